// Package fuzz throws random operation sequences at the lockstep pair (checker.Pair). Four drivers
// share one alphabet and one apply/check path:
//
//   - native Go fuzzing (FuzzLockstep, FuzzTrace in fuzz_test.go): bytes -> Decode -> Session;
//   - rapid (RapidProperty): a state machine whose op generator is OpGen, built on Draw;
//   - gopter (Commands / GopterProperty): commands whose ops come from Draw over raw words;
//   - go-fuzz (fuzz/gofuzz, a nested module): bytes -> Decode -> Run.
//
// Every driver turns "some source of choices" into ops through Draw (one folding function: any
// choice sequence is a valid op sequence, parameters fold into the profile's ranges), and applies
// them through Session.Apply, which is checker.Pair.Step. See README.md for the workflow.
package fuzz

import (
	"fmt"
	"sort"
	"sync"

	"github.com/mcheck/mcheck"
)

// MaxOps caps the number of ops Decode produces.
const MaxOps = 64

// Source supplies choices. Next(n) returns a value in [0, n) for n >= 1; value 0 is always the
// "simplest" choice (the profile's defaults, the first hot-pluggable block, nr=1, ...), so sources
// that shrink toward zero (rapid, gopter, a zero-filled byte string) shrink toward simple ops.
type Source interface {
	Next(n int) int
}

// ---------------------------------------------------------------------------------------------
// Profiles: the scaled tiny-* profiles and their kernel / memmap_on_memory / HVO / ZONE_DEVICE /
// blocks variants that validate. Every variant is reachable from its base profile through
// mcheck.FullOverrides, so a decoded input always has a faithful trace header.

// preferred orders the scaled profiles: choice 0 is tiny-x86.
var preferred = []string{"tiny-x86", "tiny-ppc", "tiny-arm64"}

var (
	variantsOnce sync.Once
	baseNames    []string
	variantsOf   map[string][]mcheck.Profile
	variantIndex map[string][2]int // knobKey -> (base, variant)
)

func loadVariants() {
	variantsOnce.Do(func() {
		variantsOf = map[string][]mcheck.Profile{}
		seen := map[string]bool{}
		for _, n := range preferred {
			if p, err := mcheck.LookupProfile(n); err == nil && p.Scaled {
				baseNames = append(baseNames, n)
				seen[n] = true
			}
		}
		var rest []string
		for _, n := range mcheck.ProfileNames() {
			if p, _ := mcheck.LookupProfile(n); p.Scaled && !seen[n] {
				rest = append(rest, n)
			}
		}
		sort.Strings(rest)
		baseNames = append(baseNames, rest...)
		variantIndex = map[string][2]int{}
		for i, n := range baseNames {
			p, _ := mcheck.LookupProfile(n)
			variantsOf[n] = variants(p)
			for j, v := range variantsOf[n] {
				variantIndex[knobKey(v)] = [2]int{i, j}
			}
		}
	})
}

// variants lists p's valid knob combinations, p's own defaults first.
func variants(p mcheck.Profile) []mcheck.Profile {
	kv := func(s string) mcheck.Kernel { k, _ := mcheck.ParseKernel(s); return k }
	kernels := []mcheck.Kernel{p.Kernel, kv("6.8"), kv("6.6"), kv("6.1"), kv("5.15"), kv("5.10")}
	modes := []mcheck.Mode{p.Mode, mcheck.ModeOn, mcheck.ModeForce, mcheck.ModeOff}
	hvos := []bool{p.HVO, !p.HVO}
	zds := []bool{p.ZoneDevice, !p.ZoneDevice}
	blocks := []int{p.HotplugBlocks, 1, 2, 3}
	var out []mcheck.Profile
	seen := map[string]bool{}
	for _, k := range kernels {
		for _, m := range modes {
			for _, h := range hvos {
				for _, z := range zds {
					for _, b := range blocks {
						k, m, h, z, b := k, m, h, z, b
						v, err := p.WithOverrides(mcheck.Overrides{Kernel: &k, Mode: &m, Blocks: &b, HVO: &h, ZoneDevice: &z})
						key := knobKey(v)
						if err != nil || seen[key] {
							continue
						}
						seen[key] = true
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}

func knobKey(p mcheck.Profile) string {
	return fmt.Sprintf("%s/%s/%s/%d/%t/%t", p.Name, p.Kernel, p.Mode, p.HotplugBlocks, p.HVO, p.ZoneDevice)
}

// Profiles returns every profile Decode can produce, in choice order.
func Profiles() []mcheck.Profile {
	loadVariants()
	var out []mcheck.Profile
	for _, n := range baseNames {
		out = append(out, variantsOf[n]...)
	}
	return out
}

// DrawProfile picks a profile variant: first the base profile, then its variant.
func DrawProfile(s Source) mcheck.Profile {
	loadVariants()
	name := baseNames[s.Next(len(baseNames))]
	vs := variantsOf[name]
	return vs[s.Next(len(vs))]
}

// profileChoices is DrawProfile's inverse; ok is false if p is not one of the variants.
func profileChoices(p mcheck.Profile) (base, variant int, ok bool) {
	loadVariants()
	if ij, ok := variantIndex[knobKey(p)]; ok {
		return ij[0], ij[1], true
	}
	for i, n := range baseNames {
		if n == p.Name {
			return i, 0, false
		}
	}
	return 0, 0, false
}

// ---------------------------------------------------------------------------------------------
// Parameters: one codec per (op kind, key). n is the number of choices, fold maps a choice to the
// field, unfold is its inverse (ok=false if the value is outside what fold produces).

type codec struct {
	n      func(p *mcheck.Profile) int
	fold   func(p *mcheck.Profile, o *mcheck.Op, c int)
	unfold func(p *mcheck.Profile, o mcheck.Op) (int, bool)
}

func mod(a, n int) int { return ((a % n) + n) % n }

// rotated maps choice c to (start + c) mod n and back: choices start at an interesting value
// (the hot-pluggable range) and wrap around to the rest of [0, n).
func rotated(n, start int, c int) int { return mod(start+c, n) }
func unrotated(n, start, v int) (int, bool) {
	if v < 0 || v >= n {
		return 0, false
	}
	return mod(v-start, n), true
}

// onePlus maps choices [0, n) to values 1, 2, ..., n-1, 0 (choice 0 is nr=1; the last is nr=0).
func onePlus(n, c int) int { return mod(c+1, n) }
func unOnePlus(n, v int) (int, bool) {
	if v < 0 || v >= n {
		return 0, false
	}
	return mod(v-1, n), true
}

// Block choices: the hot-pluggable blocks first, then the first block past the machine (ENOENT,
// E2BIG), the block just below the hot-pluggable range and block 0 (boot memory).
func blockChoices(p *mcheck.Profile) []int {
	l := make([]int, 0, p.HotplugBlocks+3)
	for i := 0; i < p.HotplugBlocks; i++ {
		l = append(l, p.HotplugStart+i)
	}
	below := p.HotplugStart - 1
	if below < 0 {
		below = 0
	}
	return append(l, p.NrBlocks(), below, 0)
}

func pagesPerSubsectionOf(p *mcheck.Profile) int { return p.PagesPerSubsection() }
func nrSubsections(p *mcheck.Profile) int        { return p.NrPfns() / p.PagesPerSubsection() }
func hotplugSubsection(p *mcheck.Profile) int {
	return p.BlockStart(p.HotplugStart) / p.PagesPerSubsection()
}
func subsectionsPerBlock(p *mcheck.Profile) int {
	return p.SubsectionsPerSection() * p.SectionsPerBlock
}

var blockCodec = codec{
	n: func(p *mcheck.Profile) int { return p.HotplugBlocks + 3 },
	fold: func(p *mcheck.Profile, o *mcheck.Op, c int) {
		o.Block = blockChoices(p)[c]
	},
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) {
		for i, b := range blockChoices(p) {
			if b == o.Block {
				return i, true
			}
		}
		return 0, false
	},
}

// nrBlocksCodec: add_memory / remove_memory nr in [0, HotplugBlocks+1].
var nrBlocksCodec = codec{
	n:      func(p *mcheck.Profile) int { return p.HotplugBlocks + 2 },
	fold:   func(p *mcheck.Profile, o *mcheck.Op, c int) { o.Nr = onePlus(p.HotplugBlocks+2, c) },
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) { return unOnePlus(p.HotplugBlocks+2, o.Nr) },
}

// nrSubsectionsCodec: memremap nr in [0, subsections per block + 1].
var nrSubsectionsCodec = codec{
	n:    func(p *mcheck.Profile) int { return subsectionsPerBlock(p) + 2 },
	fold: func(p *mcheck.Profile, o *mcheck.Op, c int) { o.Nr = onePlus(subsectionsPerBlock(p)+2, c) },
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) {
		return unOnePlus(subsectionsPerBlock(p)+2, o.Nr)
	},
}

// nrPagesCodec: alloc_contig nr in [0, pages per block].
var nrPagesCodec = codec{
	n:      func(p *mcheck.Profile) int { return p.BlockPages() + 1 },
	fold:   func(p *mcheck.Profile, o *mcheck.Op, c int) { o.Nr = onePlus(p.BlockPages()+1, c) },
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) { return unOnePlus(p.BlockPages()+1, o.Nr) },
}

var mmomCodec = codec{
	n:    func(*mcheck.Profile) int { return 2 },
	fold: func(_ *mcheck.Profile, o *mcheck.Op, c int) { o.MMOM = c == 1 },
	unfold: func(_ *mcheck.Profile, o mcheck.Op) (int, bool) {
		if o.MMOM {
			return 1, true
		}
		return 0, true
	},
}

var typeCodec = codec{
	n:    func(*mcheck.Profile) int { return 3 },
	fold: func(_ *mcheck.Profile, o *mcheck.Op, c int) { o.Type = mcheck.OnlineType(c) },
	unfold: func(_ *mcheck.Profile, o mcheck.Op) (int, bool) {
		return int(o.Type), o.Type <= mcheck.OnlineMovable
	},
}

// subsectionCodec: a global subsection index in [0, NrPfns/PPSS] (the last one is past the end),
// starting at the hot-pluggable range.
var subsectionCodec = codec{
	n: func(p *mcheck.Profile) int { return nrSubsections(p) + 1 },
	fold: func(p *mcheck.Profile, o *mcheck.Op, c int) {
		o.Subsection = rotated(nrSubsections(p)+1, hotplugSubsection(p), c)
	},
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) {
		return unrotated(nrSubsections(p)+1, hotplugSubsection(p), o.Subsection)
	},
}

// reserveCodec: altmap reserve in [0, PPSS).
var reserveCodec = codec{
	n:    func(p *mcheck.Profile) int { return pagesPerSubsectionOf(p) },
	fold: func(_ *mcheck.Profile, o *mcheck.Op, c int) { o.Reserve = c },
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) {
		return o.Reserve, o.Reserve >= 0 && o.Reserve < pagesPerSubsectionOf(p)
	},
}

// freeCodec: altmap free in [0, 2*PPSS]; 0 = no driver altmap.
var freeCodec = codec{
	n:    func(p *mcheck.Profile) int { return 2*pagesPerSubsectionOf(p) + 1 },
	fold: func(_ *mcheck.Profile, o *mcheck.Op, c int) { o.Free = c },
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) {
		return o.Free, o.Free >= 0 && o.Free <= 2*pagesPerSubsectionOf(p)
	},
}

// pfnCodec: a pfn in [0, NrPfns] (NrPfns itself is past the end), starting at the hot-pluggable range.
var pfnCodec = codec{
	n: func(p *mcheck.Profile) int { return p.NrPfns() + 1 },
	fold: func(p *mcheck.Profile, o *mcheck.Op, c int) {
		o.Pfn = rotated(p.NrPfns()+1, p.BlockStart(p.HotplugStart), c)
	},
	unfold: func(p *mcheck.Profile, o mcheck.Op) (int, bool) {
		return unrotated(p.NrPfns()+1, p.BlockStart(p.HotplugStart), o.Pfn)
	},
}

var faultCodec = codec{
	n:    func(*mcheck.Profile) int { return int(mcheck.NrFaultKinds) - 1 },
	fold: func(_ *mcheck.Profile, o *mcheck.Op, c int) { o.Fault = mcheck.FaultKind(c + 1) },
	unfold: func(_ *mcheck.Profile, o mcheck.Op) (int, bool) {
		return int(o.Fault) - 1, o.Fault > mcheck.FaultNone && o.Fault < mcheck.NrFaultKinds
	},
}

// codecFor returns the codec of key for op kind k.
func codecFor(k mcheck.OpKind, key string) codec {
	switch key {
	case "block":
		return blockCodec
	case "nr":
		switch k {
		case mcheck.OpMemremap:
			return nrSubsectionsCodec
		case mcheck.OpAllocContig:
			return nrPagesCodec
		}
		return nrBlocksCodec
	case "memmap_on_memory":
		return mmomCodec
	case "type":
		return typeCodec
	case "subsection":
		return subsectionCodec
	case "reserve":
		return reserveCodec
	case "free":
		return freeCodec
	case "pfn":
		return pfnCodec
	case "kind":
		return faultCodec
	}
	panic("fuzz: no codec for key " + key)
}

// ---------------------------------------------------------------------------------------------
// The one folding function.

// DrawKind picks an op kind.
func DrawKind(s Source) mcheck.OpKind { return mcheck.OpKind(s.Next(int(mcheck.NrOpKinds))) }

// DrawParams picks the parameters of an op of kind k, folded into p's ranges. Only the fields
// named by the kind's keys are set, so the op is canonical: ParseOp(op.String()) == op.
func DrawParams(p *mcheck.Profile, k mcheck.OpKind, s Source) mcheck.Op {
	o := mcheck.Op{Kind: k}
	for _, key := range mcheck.Specs[k].Keys {
		c := codecFor(k, key)
		c.fold(p, &o, s.Next(c.n(p)))
	}
	return o
}

// Draw picks one op: its kind, then its parameters.
func Draw(p *mcheck.Profile, s Source) mcheck.Op { return DrawParams(p, DrawKind(s), s) }

// Choices is Draw's inverse: the choice sequence (with each choice's range) that Draw turns into
// op. ok is false if some field lies outside what Draw produces (that choice is then folded).
func Choices(p *mcheck.Profile, op mcheck.Op) (cs []Choice, ok bool) {
	ok = op.Kind < mcheck.NrOpKinds
	if !ok {
		return []Choice{{int(op.Kind) % int(mcheck.NrOpKinds), int(mcheck.NrOpKinds)}}, false
	}
	cs = append(cs, Choice{int(op.Kind), int(mcheck.NrOpKinds)})
	for _, key := range mcheck.Specs[op.Kind].Keys {
		c := codecFor(op.Kind, key)
		n := c.n(p)
		v, good := c.unfold(p, op)
		if !good {
			ok = false
			v = mod(v, n)
		}
		cs = append(cs, Choice{v, n})
	}
	return cs, ok && DrawFrom(p, cs) == op
}

// Choice is one value of a choice sequence: V in [0, N).
type Choice struct{ V, N int }

// DrawFrom replays a choice sequence through Draw.
func DrawFrom(p *mcheck.Profile, cs []Choice) mcheck.Op {
	r := &replaySource{cs: cs}
	return Draw(p, r)
}

type replaySource struct {
	cs []Choice
	i  int
}

func (r *replaySource) Next(n int) int {
	if r.i >= len(r.cs) {
		return 0
	}
	c := r.cs[r.i]
	r.i++
	return mod(c.V, n)
}

// ---------------------------------------------------------------------------------------------
// Bytes.

// byteSource reads choices from a byte string: one byte for ranges up to 256, two (big-endian)
// up to 65536, four beyond; each taken modulo the range. Missing bytes read as zero, so every
// byte string decodes.
type byteSource struct {
	data []byte
}

func (b *byteSource) byte() int {
	if len(b.data) == 0 {
		return 0
	}
	v := b.data[0]
	b.data = b.data[1:]
	return int(v)
}

func width(n int) int {
	switch {
	case n <= 1:
		return 0
	case n <= 1<<8:
		return 1
	case n <= 1<<16:
		return 2
	}
	return 4
}

func (b *byteSource) Next(n int) int {
	v := 0
	for i := 0; i < width(n); i++ {
		v = v<<8 | b.byte()
	}
	if n <= 1 {
		return 0
	}
	return v % n
}

// Decode turns any byte string into a profile and an op sequence: two bytes pick the profile
// variant, then each op takes one kind byte and one or two bytes per parameter, folded into the
// profile's ranges. Decoding stops at the end of the data or after MaxOps ops; it never fails.
func Decode(data []byte) (mcheck.Profile, []mcheck.Op) {
	s := &byteSource{data: data}
	p := DrawProfile(s)
	var ops []mcheck.Op
	for len(s.data) > 0 && len(ops) < MaxOps {
		ops = append(ops, Draw(&p, s))
	}
	return p, ops
}

func putChoice(out []byte, c Choice) []byte {
	w := width(c.N)
	v := mod(c.V, max(c.N, 1))
	for i := w - 1; i >= 0; i-- {
		out = append(out, byte(v>>(8*i)))
	}
	return out
}

// Encode is Decode's inverse: Decode(Encode(p, ops)) == (p, ops) whenever p is one of Profiles()
// and every op is one Draw can produce (see Choices) and len(ops) <= MaxOps. Other values are
// folded the way Decode folds them (an unknown profile encodes as the first variant of its base,
// or as tiny-x86).
func Encode(p mcheck.Profile, ops []mcheck.Op) []byte {
	b, v, ok := profileChoices(p)
	loadVariants()
	out := putChoice(nil, Choice{b, len(baseNames)})
	out = putChoice(out, Choice{v, len(variantsOf[baseNames[b]])})
	if !ok {
		p = variantsOf[baseNames[b]][v]
	}
	for _, op := range ops {
		cs, _ := Choices(&p, op)
		for _, c := range cs {
			out = putChoice(out, c)
		}
	}
	return out
}

// Encodable reports whether Encode(p, ops) decodes back to exactly (p, ops).
func Encodable(p mcheck.Profile, ops []mcheck.Op) bool {
	if _, _, ok := profileChoices(p); !ok || len(ops) > MaxOps {
		return false
	}
	for _, op := range ops {
		if _, ok := Choices(&p, op); !ok {
			return false
		}
	}
	return true
}
