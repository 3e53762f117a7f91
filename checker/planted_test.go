package checker

import (
	"context"
	"testing"

	"github.com/mcheck/mcheck"
)

// plantedRoot returns the tiny-x86 pair with impl fault switches.
func plantedRoot(t *testing.T, inject ...string) (mcheck.Profile, Root) {
	t.Helper()
	p, err := mcheck.LookupProfile("tiny-x86")
	if err != nil {
		t.Fatal(err)
	}
	root := PairRoot(p, inject)
	if _, _, err := root(); err != nil {
		t.Fatalf("model/impl not available: %v", err)
	}
	return p, root
}

// The default alphabet passes a small bound on the fault-free pair.
func TestSearchCleanSmallDepth(t *testing.T) {
	p, root := plantedRoot(t)
	o, err := Search(context.Background(), root, Options{Depth: 3, Ops: Alphabet(&p, DefaultOpKinds), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if o.Finding != nil {
		t.Fatalf("finding without injected faults: %v\npath %v", o.Finding, o.Path)
	}
	if !o.Complete || o.DepthReached != 3 {
		t.Fatalf("complete %v depth %d", o.Complete, o.DepthReached)
	}
}

// Planted faults are found with the minimal-length counterexample, the same for 1 and 2 workers,
// and the path replays to the same finding.
func TestSearchFindsPlantedFaults(t *testing.T) {
	for _, tc := range []struct {
		fault string
		want  []mcheck.OpKind // the minimal sequence's op kinds
	}{
		// memory_block_online forgets present += nr_vmemmap_pages: needs a self-hosted block
		// (add with memmap_on_memory) that is onlined: 2 ops.
		{"online-skips-vmemmap-present", []mcheck.OpKind{mcheck.OpAddMemory, mcheck.OpOnline}},
		// HVO of a folio whose vmemmap is self-hosted: add (memmap_on_memory), online, allocate
		// a huge page, optimize it: 4 ops.
		{"hvo-ignores-self-hosted", []mcheck.OpKind{mcheck.OpAddMemory, mcheck.OpOnline, mcheck.OpHugetlbAlloc, mcheck.OpHugetlbOptimize}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			p, root := plantedRoot(t, tc.fault)
			ops := Alphabet(&p, DefaultOpKinds)
			var first *Outcome
			for _, w := range []int{1, 2} {
				o, err := Search(context.Background(), root, Options{Depth: len(tc.want), Ops: ops, Workers: w})
				if err != nil {
					t.Fatal(err)
				}
				if o.Finding == nil {
					t.Fatalf("workers %d: %s not found within depth %d", w, tc.fault, len(tc.want))
				}
				if len(o.Path) != len(tc.want) {
					t.Fatalf("workers %d: counterexample of %d ops, want %d: %v", w, len(o.Path), len(tc.want), o.Path)
				}
				for i, k := range tc.want {
					if o.Path[i].Kind != k {
						t.Fatalf("workers %d: op %d is %s, want %s (path %v)", w, i+1, o.Path[i], k, o.Path)
					}
				}
				if !o.Path[0].MMOM {
					t.Errorf("the add does not use memmap_on_memory: %v", o.Path[0])
				}
				if first == nil {
					first = o
				} else if first.Finding.String() != o.Finding.String() || first.Distinct != o.Distinct ||
					first.Transitions != o.Transitions {
					t.Errorf("1 and 2 workers differ:\n%v (%d states)\n%v (%d states)", first.Finding, first.Distinct, o.Finding, o.Distinct)
				}
			}
			tr := CounterexampleTrace(p, []string{tc.fault}, first.Finding, first.Path)
			parsed, err := mcheck.ParseTrace(stringsReader(tr.String()), "planted")
			if err != nil {
				t.Fatal(err)
			}
			f, err := RunTrace(parsed)
			if err != nil {
				t.Fatal(err)
			}
			if f == nil || f.String() != first.Finding.String() || !ExpectMatches(parsed.Expect, f) {
				t.Fatalf("replay: %v\nwant %v", f, first.Finding)
			}
		})
	}
}
