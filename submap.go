package mcheck

import (
	"fmt"
	"math/bits"
	"strings"
)

// SubsectionMap is a section's usage->subsection_map: one bit per subsection, up to 256
// (arm64 with 64K pages has 256 subsections of 2 MiB in a 512 MiB section).
type SubsectionMap [4]uint64

// MaxSubsections is the largest SUBSECTIONS_PER_SECTION a profile may have.
const MaxSubsections = 256

// Test reports bit i.
func (m SubsectionMap) Test(i int) bool { return m[i>>6]&(1<<(i&63)) != 0 }

// rangeMask returns the bits of [i0, i1) that fall into word w.
func rangeMask(w, i0, i1 int) uint64 {
	lo, hi := max(i0, w*64), min(i1, w*64+64)
	if lo >= hi {
		return 0
	}
	n := hi - lo
	var mask uint64 = ^uint64(0)
	if n < 64 {
		mask = (1 << n) - 1
	}
	return mask << (lo - w*64)
}

// AnyInRange reports whether any bit of [i0, i1) is set.
func (m SubsectionMap) AnyInRange(i0, i1 int) bool {
	for w := range m {
		if m[w]&rangeMask(w, i0, i1) != 0 {
			return true
		}
	}
	return false
}

// AllInRange reports whether every bit of [i0, i1) is set.
func (m SubsectionMap) AllInRange(i0, i1 int) bool {
	for w := range m {
		k := rangeMask(w, i0, i1)
		if m[w]&k != k {
			return false
		}
	}
	return true
}

// SetRange sets bits [i0, i1).
func (m *SubsectionMap) SetRange(i0, i1 int) {
	for w := range m {
		m[w] |= rangeMask(w, i0, i1)
	}
}

// ClearRange clears bits [i0, i1).
func (m *SubsectionMap) ClearRange(i0, i1 int) {
	for w := range m {
		m[w] &^= rangeMask(w, i0, i1)
	}
}

// IsZero reports an empty map.
func (m SubsectionMap) IsZero() bool { return m == SubsectionMap{} }

// Count is the number of set bits.
func (m SubsectionMap) Count() int {
	n := 0
	for _, w := range m {
		n += bits.OnesCount64(w)
	}
	return n
}

// String prints the map in hex, most significant word first, without leading zero words.
func (m SubsectionMap) String() string {
	var parts []string
	started := false
	for w := 3; w >= 0; w-- {
		if !started && m[w] == 0 && w > 0 {
			continue
		}
		if !started {
			parts = append(parts, fmt.Sprintf("%#x", m[w]))
			started = true
		} else {
			parts = append(parts, fmt.Sprintf("%016x", m[w]))
		}
	}
	return strings.Join(parts, "_")
}
