package checker

import (
	"fmt"
	"sort"

	"github.com/mcheck/mcheck"
)

// Minimize shrinks a failing trace to a short one that fails the same way (same Finding.ID()):
//
//  1. replay t to get its finding (error if there is none) and cut the ops after it;
//  2. delta debugging (ddmin) over the ops;
//  3. parameter simplification: block ids renamed down across the whole trace, then per op
//     smaller nr / block / subsection / pfn / reserve / free values, memmap_on_memory=0,
//     type=kernel, ... (SimplerOps), and a smaller hot-pluggable range (the blocks knob);
//
// repeating 2-3 until nothing changes. The result pins every profile knob (mcheck.FullOverrides),
// keeps t's profile and inject, has Expect set to the finding, and is returned with its finding.
// Minimize is deterministic: the same trace always minimizes to the same result.
func Minimize(t *mcheck.Trace) (*mcheck.Trace, *Finding, error) {
	p, err := t.ResolveProfile()
	if err != nil {
		return nil, nil, err
	}
	f0, err := safeRun(p, t.Inject, t.Ops)
	if err != nil {
		return nil, nil, err
	}
	if f0 == nil {
		return nil, nil, fmt.Errorf("minimize: the trace has no finding (model and impl agree on all %d ops, invariants hold)", len(t.Ops))
	}
	m := &minimizer{p: p, inject: t.Inject, id: f0.ID()}
	ops := cut(t.Ops, f0)
	m.best = f0
	for round := 0; round < 8; round++ {
		before := fmt.Sprint(m.p, ops)
		ops = m.ddmin(ops)
		ops = m.renameBlocks(ops)
		ops = m.simplifyParams(ops)
		ops = m.shrinkMachine(ops)
		if fmt.Sprint(m.p, ops) == before {
			break
		}
	}
	f, err := safeRun(m.p, m.inject, ops)
	if err != nil || f == nil || f.ID() != m.id {
		// Cannot happen: every accepted step was replayed. Report it rather than lie.
		return nil, nil, &InternalError{Value: fmt.Sprintf("the minimized trace does not reproduce %s (%v)", m.id, err), Where: "minimize"}
	}
	out := &mcheck.Trace{
		Profile:   t.Profile,
		Overrides: mcheck.FullOverrides(m.p),
		Inject:    append([]string(nil), t.Inject...),
		Expect:    f.Expect(),
		Comments:  []string{fmt.Sprintf("minimized by checker.Minimize from %d ops to %d", len(t.Ops), len(ops))},
		Ops:       ops,
	}
	return out, f, nil
}

type minimizer struct {
	p      mcheck.Profile
	inject []string
	id     string
	best   *Finding
	runs   int
}

// safeRun is Run with a machine panic turned into an *InternalError (a candidate that panics is
// not the same failure; an input that panics is reported, not crashed on).
func safeRun(p mcheck.Profile, inject []string, ops []mcheck.Op) (f *Finding, err error) {
	defer catch("minimize", &err)
	return Run(p, inject, ops)
}

// cut drops the ops after the finding's step.
func cut(ops []mcheck.Op, f *Finding) []mcheck.Op {
	n := f.Step + 1
	if n > len(ops) {
		n = len(ops)
	}
	if n < 0 {
		n = 0
	}
	return append([]mcheck.Op(nil), ops[:n]...)
}

// test replays ops on the minimizer's profile; ok if they fail with the same ID. It returns the
// ops cut after the finding.
func (m *minimizer) test(ops []mcheck.Op) ([]mcheck.Op, bool) {
	return m.testOn(m.p, ops)
}

func (m *minimizer) testOn(p mcheck.Profile, ops []mcheck.Op) ([]mcheck.Op, bool) {
	m.runs++
	f, err := safeRun(p, m.inject, ops)
	if err != nil || f == nil || f.ID() != m.id {
		return nil, false
	}
	m.best = f
	return cut(ops, f), true
}

// ddmin is Zeller's delta debugging: try each chunk alone, then each complement, refining the
// granularity until every single op is necessary.
func (m *minimizer) ddmin(ops []mcheck.Op) []mcheck.Op {
	if len(ops) == 0 {
		return ops
	}
	if r, ok := m.test(nil); ok {
		return r
	}
	n := 2
	for len(ops) >= 2 {
		chunks := split(ops, n)
		reduced := false
		for _, c := range chunks {
			if r, ok := m.test(c); ok {
				ops, n, reduced = r, 2, true
				break
			}
		}
		if !reduced {
			for i := range chunks {
				if r, ok := m.test(complement(chunks, i)); ok {
					ops, n, reduced = r, max(n-1, 2), true
					break
				}
			}
		}
		if !reduced {
			if n >= len(ops) {
				break
			}
			n = min(2*n, len(ops))
		}
	}
	return ops
}

func split(ops []mcheck.Op, n int) [][]mcheck.Op {
	var out [][]mcheck.Op
	start := 0
	for i := 0; i < n; i++ {
		end := start + (len(ops)-start)/(n-i)
		if end > start {
			out = append(out, ops[start:end])
		}
		start = end
	}
	return out
}

func complement(chunks [][]mcheck.Op, skip int) []mcheck.Op {
	var out []mcheck.Op
	for i, c := range chunks {
		if i != skip {
			out = append(out, c...)
		}
	}
	return out
}

func hasKey(k mcheck.OpKind, key string) bool {
	if k >= mcheck.NrOpKinds {
		return false
	}
	for _, x := range mcheck.Specs[k].Keys {
		if x == key {
			return true
		}
	}
	return false
}

// renameBlocks maps every use of a block id to a smaller one, across all ops at once (an add,
// online, offline, remove of one block move together).
func (m *minimizer) renameBlocks(ops []mcheck.Op) []mcheck.Op {
	for changed := true; changed; {
		changed = false
		used := map[int]bool{}
		for _, o := range ops {
			if hasKey(o.Kind, "block") {
				used[o.Block] = true
			}
		}
		var ids []int
		for b := range used {
			ids = append(ids, b)
		}
		sort.Ints(ids)
	outer:
		for _, from := range ids {
			for _, to := range candidateBlocks(&m.p, from) {
				if used[to] {
					continue
				}
				next := make([]mcheck.Op, len(ops))
				for i, o := range ops {
					if hasKey(o.Kind, "block") && o.Block == from {
						o.Block = to
					}
					next[i] = o
				}
				if r, ok := m.test(next); ok {
					ops, changed = r, true
					break outer
				}
			}
		}
	}
	return ops
}

// candidateBlocks lists the block ids smaller than b worth trying, best first. A block in the
// hot-pluggable range stays in it (the first hot-pluggable block is the simplest); one below it
// may move down to block 0.
func candidateBlocks(p *mcheck.Profile, b int) []int {
	lo := 0
	if b >= p.HotplugStart {
		lo = p.HotplugStart
	}
	var out []int
	for x := lo; x < b; x++ {
		out = append(out, x)
	}
	return out
}

// simplifyParams replaces each op, front to back, by the first simpler variant that keeps the
// finding, until no op can be simplified.
func (m *minimizer) simplifyParams(ops []mcheck.Op) []mcheck.Op {
	for i := 0; i < len(ops); i++ {
		for again := true; again && i < len(ops); {
			again = false
			for _, c := range SimplerOps(&m.p, ops[i]) {
				next := append([]mcheck.Op(nil), ops...)
				next[i] = c
				if r, ok := m.test(next); ok {
					ops, again = r, true
					break
				}
			}
		}
	}
	return ops
}

// shrinkMachine tries fewer hot-pluggable blocks.
func (m *minimizer) shrinkMachine(ops []mcheck.Op) []mcheck.Op {
	for b := 1; b < m.p.HotplugBlocks; b++ {
		q, err := m.p.WithOverrides(mcheck.Overrides{Blocks: &b})
		if err != nil {
			continue
		}
		if r, ok := m.testOn(q, ops); ok {
			m.p = q
			return r
		}
	}
	return ops
}

// SimplerOps lists variants of op that are simpler by one step, simplest first: smaller counts
// and ids, memmap_on_memory=0, type=kernel (then auto), no altmap, an earlier fault kind. The
// minimizer and the gopter shrinker use it; every variant is a valid, canonical op.
func SimplerOps(p *mcheck.Profile, op mcheck.Op) []mcheck.Op {
	if op.Kind >= mcheck.NrOpKinds {
		return nil
	}
	var out []mcheck.Op
	seen := map[mcheck.Op]bool{op: true}
	add := func(o mcheck.Op) {
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	for _, key := range mcheck.Specs[op.Kind].Keys {
		switch key {
		case "memmap_on_memory":
			if op.MMOM {
				o := op
				o.MMOM = false
				add(o)
			}
		case "type":
			for _, t := range []mcheck.OnlineType{mcheck.OnlineKernel, mcheck.OnlineAuto} {
				if rank(t) < rank(op.Type) {
					o := op
					o.Type = t
					add(o)
				}
			}
		case "kind":
			for k := mcheck.FaultKind(1); k < op.Fault; k++ {
				o := op
				o.Fault = k
				add(o)
			}
		case "block":
			for _, b := range candidateBlocks(p, op.Block) {
				o := op
				o.Block = b
				add(o)
			}
		case "nr":
			for _, v := range smallerInts(op.Nr, 1, nil) {
				o := op
				o.Nr = v
				add(o)
			}
		case "subsection":
			hs := p.BlockStart(p.HotplugStart) / p.PagesPerSubsection()
			for _, v := range smallerInts(op.Subsection, hs, []int{p.SubsectionsPerSection() * p.SectionsPerBlock, p.SubsectionsPerSection()}) {
				o := op
				o.Subsection = v
				add(o)
			}
		case "reserve":
			for _, v := range smallerInts(op.Reserve, 0, nil) {
				o := op
				o.Reserve = v
				add(o)
			}
		case "free":
			for _, v := range smallerInts(op.Free, 0, nil) {
				o := op
				o.Free = v
				if v == 0 {
					o.Reserve = 0 // no altmap: a reserve would only make it EINVAL
				}
				add(o)
			}
		case "pfn":
			for _, v := range smallerInts(op.Pfn, p.BlockStart(p.HotplugStart), []int{p.BlockPages(), p.PagesPerSection(), p.PageblockPages(), p.PagesPerSubsection()}) {
				o := op
				o.Pfn = v
				add(o)
			}
		}
	}
	return out
}

// rank orders online types by simplicity: kernel, auto, movable.
func rank(t mcheck.OnlineType) int {
	switch t {
	case mcheck.OnlineKernel:
		return 0
	case mcheck.OnlineAuto:
		return 1
	}
	return 2
}

// smallerInts lists values below v worth trying, simplest first: the preferred value (if
// smaller), 0, 1, v rounded down to each alignment, v/2 and v-1.
func smallerInts(v, preferred int, aligns []int) []int {
	var out []int
	seen := map[int]bool{}
	add := func(x int) {
		if x >= 0 && x < v && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	add(preferred)
	add(0)
	add(1)
	for _, a := range aligns {
		if a > 0 {
			add(v / a * a)
		}
	}
	add(v / 2)
	add(v - 1)
	return out
}
