package fuzz

import (
	"math/rand/v2"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

// TestMinimizeFuzzerSizedInputs: each planted fault's shortest counterexample, spread through up
// to 64 random decoded ops on tiny-x86 (inputs that pass without the fault and fail with it),
// minimizes to at most 2 ops more than the shortest counterexample.
func TestMinimizeFuzzerSizedInputs(t *testing.T) {
	cases := []struct {
		fault string
		core  []mcheck.Op
	}{
		{"online-skips-vmemmap-present", []mcheck.Op{
			{Kind: mcheck.OpAddMemory, Block: 1, Nr: 1, MMOM: true},
			{Kind: mcheck.OpOnline, Block: 1, Type: mcheck.OnlineMovable},
		}},
		{"remove-drops-altmap", []mcheck.Op{
			{Kind: mcheck.OpAddMemory, Block: 2, Nr: 1, MMOM: true},
			{Kind: mcheck.OpRemoveMemory, Block: 2, Nr: 1},
		}},
		{"hvo-ignores-self-hosted", []mcheck.Op{
			{Kind: mcheck.OpAddMemory, Block: 1, Nr: 1, MMOM: true},
			{Kind: mcheck.OpOnline, Block: 1, Type: mcheck.OnlineMovable},
			{Kind: mcheck.OpHugetlbAlloc, Block: 1},
			{Kind: mcheck.OpHugetlbOptimize, Block: 1},
		}},
	}
	p, _ := Decode(nil) // tiny-x86, its defaults
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, uint64(len(c.fault))))
			tried := 0
			for i := 0; i < 500 && tried < 4; i++ {
				noise := make([]mcheck.Op, 64-len(c.core))
				for j := range noise {
					noise[j] = Draw(&p, &byteSource{data: randomBytes(r, 8)})
				}
				// core op k goes after noise op k*len(noise)/len(core)
				var ops []mcheck.Op
				for k, op := range c.core {
					lo, hi := k*len(noise)/len(c.core), (k+1)*len(noise)/len(c.core)
					ops = append(ops, op)
					ops = append(ops, noise[lo:hi]...)
				}
				if f, _, err := Run(p, nil, ops); err != nil || f != nil {
					continue // the noise alone fails, or a real bug: not this test's business
				}
				tr := MakeTrace(p, []string{c.fault}, ops, nil)
				f0, err := checker.RunTrace(tr)
				if err != nil || f0 == nil {
					continue // the noise undid the core
				}
				tried++
				out, f, err := checker.Minimize(tr)
				if err != nil {
					t.Fatal(err)
				}
				if f.ID() != f0.ID() {
					t.Fatalf("minimized finding %s, want %s", f.ID(), f0.ID())
				}
				if len(out.Ops) > len(c.core)+2 {
					t.Errorf("%d ops (finding at step %d) minimized to %d, want <= %d:\n%s", len(ops), f0.Step+1, len(out.Ops), len(c.core)+2, out)
				}
			}
			if tried == 0 {
				t.Fatal("no random input carried the fault")
			}
		})
	}
}
