package checker

import "math/bits"

// FPSet is the visited set of the exhaustive search: an open-addressing hash set of 64-bit state
// fingerprints with linear probing. It stores nothing but the fingerprints, one uint64 slot each,
// so its cost per visited state is 8 bytes divided by the load factor. The table grows by 1.5x when
// the load exceeds 0.8, so the load stays in [0.53, 0.8] once it has grown: 10 to 15 bytes per
// state. Slot indexes use Lemire's multiply-shift reduction, which works for any table size.
//
// Fingerprints are hashes already, so no further mixing is applied beyond a multiplicative
// scramble. The value 0 marks an empty slot; the fingerprint 0 is kept in a separate flag.
//
// FPSet is not safe for concurrent mutation; concurrent Has calls without writers are fine.
type FPSet struct {
	slots   []uint64
	n       int
	hasZero bool
	limit   int // grow when n reaches limit
}

const (
	fpMaxLoadNum = 4 // max load 4/5
	fpMaxLoadDen = 5
	fpMinSlots   = 1024
)

// NewFPSet returns a set sized for about hint fingerprints.
func NewFPSet(hint int) *FPSet {
	s := &FPSet{}
	n := hint * fpMaxLoadDen / fpMaxLoadNum
	if n < fpMinSlots {
		n = fpMinSlots
	}
	s.alloc(n)
	return s
}

func (s *FPSet) alloc(n int) {
	s.slots = make([]uint64, n)
	s.limit = n * fpMaxLoadNum / fpMaxLoadDen
}

func (s *FPSet) index(fp uint64) int {
	h := fp * 0x9E3779B97F4A7C15
	hi, _ := bits.Mul64(h, uint64(len(s.slots)))
	return int(hi)
}

// Has reports whether fp is in the set.
func (s *FPSet) Has(fp uint64) bool {
	if fp == 0 {
		return s.hasZero
	}
	i := s.index(fp)
	for {
		v := s.slots[i]
		if v == fp {
			return true
		}
		if v == 0 {
			return false
		}
		i++
		if i == len(s.slots) {
			i = 0
		}
	}
}

// Add inserts fp and reports whether it was new.
func (s *FPSet) Add(fp uint64) bool {
	if fp == 0 {
		if s.hasZero {
			return false
		}
		s.hasZero = true
		s.n++
		return true
	}
	if s.n >= s.limit {
		s.grow()
	}
	i := s.index(fp)
	for {
		v := s.slots[i]
		if v == fp {
			return false
		}
		if v == 0 {
			s.slots[i] = fp
			s.n++
			return true
		}
		i++
		if i == len(s.slots) {
			i = 0
		}
	}
}

func (s *FPSet) grow() {
	old := s.slots
	s.alloc(len(old) + len(old)/2)
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := s.index(v)
		for s.slots[i] != 0 {
			i++
			if i == len(s.slots) {
				i = 0
			}
		}
		s.slots[i] = v
	}
}

// Len is the number of fingerprints stored.
func (s *FPSet) Len() int { return s.n }

// Bytes is the memory the table occupies.
func (s *FPSet) Bytes() int64 { return int64(len(s.slots)) * 8 }

// BytesPerState is Bytes/Len (0 when empty).
func (s *FPSet) BytesPerState() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.Bytes()) / float64(s.n)
}

// CollisionProbability estimates the probability that two distinct states among n share a 64-bit
// fingerprint (so that one of them was wrongly treated as visited): n^2 / 2^65, as TLC reports it.
func CollisionProbability(n int64) float64 {
	f := float64(n)
	return f * f / 36893488147419103232.0 // 2^65
}
