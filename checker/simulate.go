package checker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcheck/mcheck"
)

// SimOptions configure Simulate.
type SimOptions struct {
	Steps   int // ops per walk
	Walks   int // number of walks
	Seed    uint64
	Ops     []mcheck.Op
	Workers int // <= 0: runtime.NumCPU()

	Progress      func(Progress)
	ProgressEvery time.Duration
	MaxMemory     int64
}

// WalkRand is the generator of walk w: PCG seeded with (seed, w), so that every walk is
// reproducible on its own and independent of how walks are spread over workers.
func WalkRand(seed uint64, w int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(w))) }

type walkResult struct {
	fps   []uint64
	steps int
	found *Finding
	path  []mcheck.Op
	err   error
}

// Simulate runs Walks random walks of Steps ops each from the initial state, op i of walk w
// chosen uniformly from Ops by WalkRand(Seed, w). The finding reported is the first of the
// lowest-numbered walk that has one; statistics count walks up to and including it, so the
// outcome depends only on the seed, not on Workers. Distinct counts the fingerprints seen.
func Simulate(ctx context.Context, root Root, opt SimOptions) (out *Outcome, err error) {
	defer catch("simulate", &err)
	if opt.Steps < 1 || opt.Walks < 1 {
		return nil, fmt.Errorf("simulation needs --steps >= 1 and --walks >= 1")
	}
	if len(opt.Ops) == 0 {
		return nil, fmt.Errorf("empty op alphabet")
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	mon := &monitor{start: time.Now()}
	sopt := Options{Progress: opt.Progress, ProgressEvery: opt.ProgressEvery, MaxMemory: opt.MaxMemory}
	defer startMonitor(mon, &sopt)()

	r, f0, err := root()
	if err != nil {
		return nil, err
	}
	out = &Outcome{}
	out.Workers = workers
	out.Alphabet = len(opt.Ops)
	seen := NewFPSet(0)
	seen.Add(r.Fingerprint())
	out.Distinct = 1
	finish := func() { out.finish(mon, seen) }
	if f0 != nil {
		out.Finding = f0
		out.Complete = true
		finish()
		return out, nil
	}

	walk := func(w int) (res walkResult) {
		defer catch(fmt.Sprintf("walk %d", w), &res.err)
		rng := WalkRand(opt.Seed, w)
		n := r.Clone()
		for s := 0; s < opt.Steps; s++ {
			op := opt.Ops[rng.IntN(len(opt.Ops))]
			res.path = append(res.path, op)
			res.steps++
			if f := n.Step(s, op); f != nil {
				res.found = f
				return res
			}
			res.fps = append(res.fps, n.Fingerprint())
			if s%64 == 63 && ctx.Err() != nil {
				return res
			}
		}
		res.path = nil
		return res
	}

	// Walks run in batches; a batch is merged in walk order.
	batch := 4 * workers
	var maxDepth int
	for base := 0; base < opt.Walks; base += batch {
		hi := min(base+batch, opt.Walks)
		results := make([]walkResult, hi-base)
		var next atomic.Int64
		next.Store(int64(base))
		var wg sync.WaitGroup
		for k := 0; k < workers; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					w := int(next.Add(1) - 1)
					if w >= hi {
						return
					}
					results[w-base] = walk(w)
				}
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			out.StopReason = StopInterrupted
			finish()
			return out, nil
		}
		for i := range results {
			res := &results[i]
			if res.err != nil {
				return nil, res.err
			}
			out.Transitions += int64(res.steps)
			for _, fp := range res.fps {
				if seen.Add(fp) {
					out.Distinct++
				}
			}
			maxDepth = max(maxDepth, len(res.fps))
			if res.found != nil {
				out.Finding = res.found
				out.Path = res.path
				out.Walk = base + i
				out.DepthReached = maxDepth
				out.Complete = true
				finish()
				return out, nil
			}
		}
		mon.distinct.Store(out.Distinct)
		mon.transitions.Store(out.Transitions)
		mon.depth.Store(int64(hi))
		if mon.overMemory.Load() {
			out.StopReason = StopMaxMemory
			out.DepthReached = maxDepth
			finish()
			return out, nil
		}
	}
	out.DepthReached = maxDepth
	out.Complete = true
	finish()
	return out, nil
}
