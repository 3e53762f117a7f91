package checker

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/mcheck/mcheck"
)

// BenchmarkSearchDepth8 is the default `mcheck --depth 8`: tiny-x86, the default alphabet, with 1
// worker and with every CPU, at the GC target the command sets. Run with -benchtime=1x (one
// search is seconds).
func BenchmarkSearchDepth8(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	p, err := mcheck.LookupProfile("tiny-x86")
	if err != nil {
		b.Fatal(err)
	}
	root := PairRoot(p, nil)
	if _, _, err := root(); err != nil {
		b.Fatal(err)
	}
	ops := Alphabet(&p, DefaultOpKinds)
	workers := []int{1}
	if n := runtime.NumCPU(); n > 1 {
		workers = append(workers, n)
	}
	for _, w := range workers {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			var o *Outcome
			for i := 0; i < b.N; i++ {
				var err error
				o, err = Search(context.Background(), root, Options{Depth: 8, Ops: ops, Workers: w})
				if err != nil {
					b.Fatal(err)
				}
				if o.Finding != nil {
					b.Fatalf("finding: %v", o.Finding)
				}
			}
			secs := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(o.Distinct), "states")
			b.ReportMetric(float64(o.Distinct)/secs, "states/s")
			b.ReportMetric(float64(o.Transitions)/secs, "transitions/s")
			b.ReportMetric(o.BytesPerState, "bytes/state")
		})
	}
}
