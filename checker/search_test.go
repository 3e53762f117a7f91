package checker

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
)

// gridMachine is a fake mcheck.Machine with a known state graph: two counters a, b in [0, cap].
// Ops (borrowing op kinds): add_memory block=0 increments a, block=1 increments b (saturating);
// remove_memory resets both; pfn_valid is a query that answers a==b. With bug set the machine
// returns EINVAL for "increment b" when a == bugA and b == bugB (a planted divergence).
type gridMachine struct {
	a, b, cap  int
	bug        bool
	bugA, bugB int
}

func (m *gridMachine) Apply(op mcheck.Op) mcheck.Result {
	switch op.Kind {
	case mcheck.OpAddMemory:
		if op.Block == 0 {
			if m.a < m.cap {
				m.a++
			}
		} else {
			if m.bug && m.a == m.bugA && m.b == m.bugB {
				return mcheck.Result{Errno: mcheck.EINVAL}
			}
			if m.b < m.cap {
				m.b++
			}
		}
	case mcheck.OpRemoveMemory:
		m.a, m.b = 0, 0
	case mcheck.OpPfnValid:
		if m.a == m.b {
			return mcheck.Result{Val: 1}
		}
	}
	return mcheck.Result{}
}

func (m *gridMachine) Snapshot() *mcheck.Snapshot {
	return &mcheck.Snapshot{BadFrees: m.a, AltmapLeaks: m.b}
}
func (m *gridMachine) Clone() mcheck.Machine { c := *m; return &c }
func (m *gridMachine) Fingerprint() uint64   { return uint64(m.a)<<32 | uint64(m.b) + 1 }
func (m *gridMachine) Check() []string       { return nil }

// fakeNode runs a model and an impl gridMachine in lockstep.
type fakeNode struct{ m, i mcheck.Machine }

func (n *fakeNode) Clone() Node         { return &fakeNode{n.m.Clone(), n.i.Clone()} }
func (n *fakeNode) Fingerprint() uint64 { return n.m.Fingerprint()*31 ^ n.i.Fingerprint() }
func (n *fakeNode) Step(s int, op mcheck.Op) *Finding {
	mr, ir := n.m.Apply(op), n.i.Apply(op)
	if mr != ir {
		return &Finding{Step: s, Op: op, Kind: KindResult, Model: mr, Impl: ir,
			Details: []string{fmt.Sprintf("result: model=%s impl=%s", mr, ir)}}
	}
	if d := mcheck.Diff(n.m.Snapshot(), n.i.Snapshot(), "model", "impl", 5); len(d) > 0 {
		return &Finding{Step: s, Op: op, Kind: KindSnapshot, Model: mr, Impl: ir, Details: d}
	}
	return nil
}

func gridRoot(cap int, bug bool, bugA, bugB int) Root {
	return func() (Node, *Finding, error) {
		m := &gridMachine{cap: cap}
		i := &gridMachine{cap: cap, bug: bug, bugA: bugA, bugB: bugB}
		return &fakeNode{m, i}, nil, nil
	}
}

var gridOps = []mcheck.Op{
	{Kind: mcheck.OpAddMemory, Block: 0, Nr: 1},
	{Kind: mcheck.OpAddMemory, Block: 1, Nr: 1},
	{Kind: mcheck.OpRemoveMemory, Block: 0, Nr: 1},
	{Kind: mcheck.OpPfnValid, Pfn: 0},
}

// gridStates is the number of (a, b) in [0,cap]^2 with a+b <= depth: reachable in <= depth ops.
func gridStates(cap, depth int) int64 {
	var n int64
	for a := 0; a <= cap; a++ {
		for b := 0; b <= cap; b++ {
			if a+b <= depth {
				n++
			}
		}
	}
	return n
}

func TestSearchExactCount(t *testing.T) {
	for _, tc := range []struct{ cap, depth int }{{3, 1}, {3, 2}, {3, 4}, {3, 10}, {5, 4}, {20, 12}} {
		for _, w := range []int{1, 4} {
			o, err := Search(context.Background(), gridRoot(tc.cap, false, 0, 0),
				Options{Depth: tc.depth, Ops: gridOps, Workers: w})
			if err != nil {
				t.Fatal(err)
			}
			if o.Finding != nil {
				t.Fatalf("unexpected finding %v", o.Finding)
			}
			want := gridStates(tc.cap, tc.depth)
			if o.Distinct != want {
				t.Errorf("cap %d depth %d workers %d: %d distinct states, want %d", tc.cap, tc.depth, w, o.Distinct, want)
			}
			if !o.Complete {
				t.Errorf("not complete")
			}
			// Every state at distance < depth is expanded with every op.
			var expanded int64
			for _, lv := range o.Levels {
				expanded += int64(lv.Frontier)
			}
			if o.Transitions != expanded*int64(len(gridOps)) {
				t.Errorf("transitions %d, want %d", o.Transitions, expanded*int64(len(gridOps)))
			}
			exhausted := 2*tc.cap < tc.depth
			if o.Exhausted != exhausted {
				t.Errorf("cap %d depth %d: exhausted=%v", tc.cap, tc.depth, o.Exhausted)
			}
		}
	}
}

func TestSearchShortestCounterexample(t *testing.T) {
	// The bug needs a=3, b=2 and then "increment b": 3+2+1 = 6 ops.
	var ref *Outcome
	for _, w := range []int{1, 2, 4, 8} {
		o, err := Search(context.Background(), gridRoot(5, true, 3, 2), Options{Depth: 10, Ops: gridOps, Workers: w})
		if err != nil {
			t.Fatal(err)
		}
		if o.Finding == nil {
			t.Fatalf("workers %d: no finding", w)
		}
		if len(o.Path) != 6 || o.Finding.Step != 5 {
			t.Fatalf("workers %d: path %v (finding step %d), want 6 ops", w, o.Path, o.Finding.Step)
		}
		// Canonical order: a-increments come first in the alphabet, so the first shortest path
		// is a a a b b b.
		want := []mcheck.Op{gridOps[0], gridOps[0], gridOps[0], gridOps[1], gridOps[1], gridOps[1]}
		if !reflect.DeepEqual(o.Path, want) {
			t.Errorf("workers %d: path %v, want %v", w, o.Path, want)
		}
		if ref == nil {
			ref = o
			continue
		}
		if o.Distinct != ref.Distinct || o.Transitions != ref.Transitions || o.DepthReached != ref.DepthReached {
			t.Errorf("workers %d: %d states %d transitions depth %d; workers 1: %d %d %d", w,
				o.Distinct, o.Transitions, o.DepthReached, ref.Distinct, ref.Transitions, ref.DepthReached)
		}
	}
	if ref.DepthReached != 5 {
		t.Errorf("depth reached %d, want 5", ref.DepthReached)
	}
	// The path replays to the same finding.
	n, _, _ := gridRoot(5, true, 3, 2)()
	var f *Finding
	for i, op := range ref.Path {
		if f = n.Step(i, op); f != nil {
			break
		}
	}
	if f == nil || f.Step != 5 || f.Kind != KindResult {
		t.Errorf("replay: %v", f)
	}
}

func TestSearchNoFindingBeyondBound(t *testing.T) {
	o, err := Search(context.Background(), gridRoot(5, true, 3, 2), Options{Depth: 5, Ops: gridOps, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if o.Finding != nil {
		t.Fatalf("finding within depth 5: %v", o.Finding)
	}
	if o.DepthReached != 5 || o.Distinct != gridStates(5, 5) {
		t.Errorf("depth %d states %d", o.DepthReached, o.Distinct)
	}
}

func TestSearchDeterministic(t *testing.T) {
	run := func(w int) *Outcome {
		o, err := Search(context.Background(), gridRoot(30, true, 9, 7), Options{Depth: 40, Ops: gridOps, Workers: w})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a := run(1)
	for i := 0; i < 5; i++ {
		b := run(4)
		if a.Distinct != b.Distinct || a.Transitions != b.Transitions || !reflect.DeepEqual(a.Path, b.Path) ||
			!reflect.DeepEqual(a.Levels, b.Levels) {
			t.Fatalf("run %d differs: %d/%d states, %d/%d transitions", i, a.Distinct, b.Distinct, a.Transitions, b.Transitions)
		}
	}
}

func TestSearchMaxStates(t *testing.T) {
	for _, w := range []int{1, 4} {
		o, err := Search(context.Background(), gridRoot(20, false, 0, 0), Options{Depth: 30, Ops: gridOps, Workers: w, MaxStates: 50})
		if err != nil {
			t.Fatal(err)
		}
		if o.StopReason != StopMaxStates || o.Distinct != 50 || o.Complete {
			t.Errorf("workers %d: stop %q distinct %d complete %v", w, o.StopReason, o.Distinct, o.Complete)
		}
	}
}

func TestSearchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o, err := Search(ctx, gridRoot(20, false, 0, 0), Options{Depth: 30, Ops: gridOps, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if o.StopReason != StopInterrupted || o.Complete {
		t.Errorf("stop %q complete %v", o.StopReason, o.Complete)
	}
}

type panicNode struct{ fakeNode }

func (n *panicNode) Clone() Node { return &panicNode{fakeNode{n.m.Clone(), n.i.Clone()}} }
func (n *panicNode) Step(s int, op mcheck.Op) *Finding {
	if op.Kind == mcheck.OpRemoveMemory {
		panic("boom")
	}
	return n.fakeNode.Step(s, op)
}

func TestSearchPanicIsInternalError(t *testing.T) {
	root := func() (Node, *Finding, error) {
		return &panicNode{fakeNode{&gridMachine{cap: 3}, &gridMachine{cap: 3}}}, nil, nil
	}
	for _, w := range []int{1, 3} {
		_, err := Search(context.Background(), root, Options{Depth: 3, Ops: gridOps, Workers: w})
		ie, ok := err.(*InternalError)
		if !ok || fmt.Sprint(ie.Value) != "boom" {
			t.Fatalf("workers %d: err = %v", w, err)
		}
	}
	_, err := Simulate(context.Background(), root, SimOptions{Steps: 10, Walks: 10, Ops: gridOps, Workers: 2})
	if _, ok := err.(*InternalError); !ok {
		t.Fatalf("simulate: err = %v", err)
	}
}

func TestSearchInitialFinding(t *testing.T) {
	root := func() (Node, *Finding, error) {
		return &fakeNode{&gridMachine{cap: 3}, &gridMachine{cap: 3}}, &Finding{Step: -1, Kind: KindSnapshot}, nil
	}
	o, err := Search(context.Background(), root, Options{Depth: 3, Ops: gridOps})
	if err != nil || o.Finding == nil || len(o.Path) != 0 {
		t.Fatalf("%v %v", o, err)
	}
}

func TestShardsCoverSearch(t *testing.T) {
	const cap, depth = 30, 14
	full, err := Search(context.Background(), gridRoot(cap, false, 0, 0), Options{Depth: depth, Ops: gridOps, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		var sums []*Summary
		for i := 0; i < n; i++ {
			o, err := Search(context.Background(), gridRoot(cap, false, 0, 0),
				Options{Depth: depth, Ops: gridOps, Workers: 2, Shard: ShardSpec{i, n}, ShardPrefix: 2 * n})
			if err != nil {
				t.Fatal(err)
			}
			if o.PrefixDepth == 0 || o.PrefixDepth >= depth {
				t.Errorf("shard %d/%d: prefix depth %d", i, n, o.PrefixDepth)
			}
			sums = append(sums, NewSummary("search", SummaryConfig{Profile: "grid"}, o, ""))
		}
		m, err := MergeSummaries(sums)
		if err != nil {
			t.Fatal(err)
		}
		if m.Result != ResultPass || !m.Complete {
			t.Errorf("merge: %s complete=%v", m.Result, m.Complete)
		}
		// Upper bound, at least the true count.
		if m.DistinctStates < full.Distinct {
			t.Errorf("%d shards: %d states < %d", n, m.DistinctStates, full.Distinct)
		}
	}
	// Sharded bug hunt: the merged finding is the shortest.
	var sums []*Summary
	for i := 0; i < 3; i++ {
		o, err := Search(context.Background(), gridRoot(cap, true, 7, 6), Options{Depth: depth, Ops: gridOps, Workers: 1, Shard: ShardSpec{i, 3}, ShardPrefix: 6})
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, NewSummary("search", SummaryConfig{Profile: "grid"}, o, ""))
	}
	m, err := MergeSummaries(sums)
	if err != nil {
		t.Fatal(err)
	}
	if m.Finding == nil || m.Finding.Length != 14 {
		t.Fatalf("merged finding %+v", m.Finding)
	}
	if _, err := MergeSummaries(sums[:2]); err == nil {
		t.Error("merge with a missing shard succeeded")
	}
	if _, err := MergeSummaries(append(sums, sums[0])); err == nil {
		t.Error("merge with a duplicate shard succeeded")
	}
}

func TestSimulateDeterministic(t *testing.T) {
	run := func(w int) *Outcome {
		o, err := Simulate(context.Background(), gridRoot(6, true, 4, 3),
			SimOptions{Steps: 30, Walks: 200, Seed: 42, Ops: gridOps, Workers: w})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a := run(1)
	if a.Finding == nil {
		t.Fatal("simulation found nothing")
	}
	for _, w := range []int{2, 5} {
		b := run(w)
		if b.Walk != a.Walk || !reflect.DeepEqual(a.Path, b.Path) || a.Distinct != b.Distinct || a.Transitions != b.Transitions {
			t.Fatalf("workers %d: walk %d vs %d", w, b.Walk, a.Walk)
		}
	}
	// The path replays to the finding.
	n, _, _ := gridRoot(6, true, 4, 3)()
	var f *Finding
	for i, op := range a.Path {
		if f = n.Step(i, op); f != nil {
			break
		}
	}
	if f == nil || f.Step != len(a.Path)-1 {
		t.Fatalf("replay: %v", f)
	}
}

func TestFPSet(t *testing.T) {
	s := NewFPSet(0)
	const n = 200000
	for i := uint64(0); i < n; i++ {
		if !s.Add(i * 0x9E3779B97F4A7C15) {
			t.Fatalf("add %d not new", i)
		}
	}
	for i := uint64(0); i < n; i++ {
		if s.Add(i * 0x9E3779B97F4A7C15) {
			t.Fatalf("re-add %d new", i)
		}
		if !s.Has(i * 0x9E3779B97F4A7C15) {
			t.Fatalf("missing %d", i)
		}
	}
	if s.Has(12345) || s.Len() != n {
		t.Fatalf("len %d", s.Len())
	}
	if b := s.BytesPerState(); b > 16 || b < 10 {
		t.Errorf("bytes per state %.1f", b)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func TestSearchMaxMemory(t *testing.T) {
	o, err := Search(context.Background(), gridRoot(20, false, 0, 0), Options{Depth: 30, Ops: gridOps, Workers: 2, MaxMemory: 1})
	if err != nil {
		t.Fatal(err)
	}
	if o.StopReason != StopMaxMemory || o.Complete {
		t.Errorf("stop %q complete %v", o.StopReason, o.Complete)
	}
}

// aliasMachine's Clone shares its slice's backing array: appends in two clones overwrite each
// other, the bug class the search must refuse to report counterexamples from.
type aliasMachine struct{ xs []int }

func (m *aliasMachine) Apply(op mcheck.Op) mcheck.Result {
	if op.Kind == mcheck.OpAddMemory && len(m.xs) < 4 {
		m.xs = append(m.xs, op.Block)
	}
	return mcheck.Result{}
}
func (m *aliasMachine) Snapshot() *mcheck.Snapshot { return &mcheck.Snapshot{} }
func (m *aliasMachine) Clone() mcheck.Machine      { return &aliasMachine{m.xs} }
func (m *aliasMachine) Fingerprint() uint64 {
	h := uint64(1469598103934665603)
	for _, x := range m.xs {
		h = (h ^ uint64(x+1)) * 1099511628211
	}
	return h
}
func (m *aliasMachine) Check() []string { return nil }

func TestSearchDetectsSharedClones(t *testing.T) {
	root := func() (Node, *Finding, error) {
		return &fakeNode{&aliasMachine{make([]int, 0, 8)}, &aliasMachine{make([]int, 0, 8)}}, nil, nil
	}
	for _, w := range []int{1, 2} {
		_, err := Search(context.Background(), root, Options{Depth: 3, Ops: gridOps, Workers: w})
		ie, ok := err.(*InternalError)
		if !ok || !strings.Contains(fmt.Sprint(ie.Value), "not a deep copy") {
			t.Fatalf("workers %d: err = %v", w, err)
		}
	}
}
