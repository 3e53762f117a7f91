package checker

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcheck/mcheck"
)

// Stop reasons of a search that did not complete its bound.
const (
	StopMaxStates   = "max-states"
	StopMaxMemory   = "max-memory"
	StopInterrupted = "interrupted"
)

// ShardSpec selects one part of a sharded search: shard Index of Count (0 <= Index < Count).
// The zero value (or Count == 1) is the whole search. See docs/sharding.md.
type ShardSpec struct{ Index, Count int }

// Active reports whether the search is split.
func (s ShardSpec) Active() bool { return s.Count > 1 }

func (s ShardSpec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ShardPrefixFactor: a sharded search expands levels redundantly (in every shard) until the
// frontier holds at least ShardPrefixFactor*Count states, then keeps a contiguous range of the
// frontier's canonical order per shard (shardSlice).
const ShardPrefixFactor = 64

// Options configure Search.
type Options struct {
	Depth     int         // longest op sequence explored (>= 1)
	Ops       []mcheck.Op // the alphabet, in canonical order
	Workers   int         // <= 0: runtime.NumCPU()
	MaxStates int64       // stop (partial) after this many distinct states; 0: no bound
	MaxMemory int64       // stop (partial) when the Go heap exceeds this many bytes; 0: no bound
	Shard     ShardSpec
	// ShardPrefix overrides ShardPrefixFactor*Shard.Count: the frontier size at which a sharded
	// search splits (0: the default). All shards of one search must use the same value.
	ShardPrefix int

	// Progress, if set, is called about every ProgressEvery (default 1 s) from a monitor goroutine.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a snapshot of a running search.
type Progress struct {
	Depth       int // the level being expanded: paths of length Depth+1 are being checked
	Distinct    int64
	Transitions int64
	Frontier    int
	Elapsed     time.Duration
	HeapBytes   uint64
}

// LevelStats describes one expanded level.
type LevelStats struct {
	Depth       int   `json:"depth"`       // states at this distance from the initial state were expanded
	Frontier    int   `json:"frontier"`    // how many (in this shard)
	NewStates   int64 `json:"new_states"`  // distinct states first seen at Depth+1
	Transitions int64 `json:"transitions"` // transitions checked
}

// Stats summarize a search.
type Stats struct {
	Distinct      int64         // distinct states (fingerprints) visited, the initial state included
	Transitions   int64         // transitions checked (Step calls that counted)
	DepthReached  int           // every op sequence of this length or shorter was checked
	Exhausted     bool          // the frontier ran empty: no new states exist beyond DepthReached
	Complete      bool          // the bound was explored to the end (or a finding ended it)
	StopReason    string        // why it is partial: StopMaxStates, StopMaxMemory, StopInterrupted
	Elapsed       time.Duration //
	Workers       int           //
	Alphabet      int           // ops per state
	VisitedBytes  int64         // memory of the visited set
	BytesPerState float64       // VisitedBytes / Distinct
	CollisionProb float64       // CollisionProbability(Distinct)
	PeakHeap      uint64        // peak runtime.MemStats.HeapAlloc sampled during the run
	PeakSys       uint64        // peak runtime.MemStats.Sys
	Levels        []LevelStats  //

	Shard        ShardSpec
	PrefixDepth  int   // sharded: levels expanded by every shard before splitting
	PrefixStates int64 // sharded: distinct states found in the shared prefix (identical in all shards)
}

// StatesPerSec and TransitionsPerSec are rates over Elapsed.
func (s *Stats) StatesPerSec() float64 { return rate(s.Distinct, s.Elapsed) }

// TransitionsPerSec is Transitions / Elapsed.
func (s *Stats) TransitionsPerSec() float64 { return rate(s.Transitions, s.Elapsed) }

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Outcome is the result of Search or Simulate: statistics and the first finding, if any.
type Outcome struct {
	Stats
	Finding *Finding
	Path    []mcheck.Op // the op sequence leading to Finding (its last op is Finding.Op); nil: initial state
	Walk    int         // Simulate: the walk that found it
}

type fnode struct {
	node Node
	fp   uint64
	path []uint16 // op indexes from the initial state
}

type kid struct {
	fnode
	pos int // parent index * len(ops) + op index, within the level
}

type chunk struct {
	lo, hi  int
	kids    []kid
	found   *Finding
	fpath   []uint16
	fpos    int
	err     error
	done    chan struct{}
	skipped bool
}

// monitor samples memory and reports progress.
type monitor struct {
	start       time.Time
	depth       atomic.Int64
	distinct    atomic.Int64
	transitions atomic.Int64
	frontier    atomic.Int64
	overMemory  atomic.Bool
	peakHeap    atomic.Uint64
	peakSys     atomic.Uint64
	heap        atomic.Uint64
}

func (m *monitor) sample(limit int64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap.Store(ms.HeapAlloc)
	if ms.HeapAlloc > m.peakHeap.Load() {
		m.peakHeap.Store(ms.HeapAlloc)
	}
	if ms.Sys > m.peakSys.Load() {
		m.peakSys.Store(ms.Sys)
	}
	if limit > 0 && ms.HeapAlloc > uint64(limit) {
		m.overMemory.Store(true)
	}
}

func (m *monitor) run(stop <-chan struct{}, opt *Options) {
	every := opt.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			m.sample(opt.MaxMemory)
			if opt.Progress != nil && now.Sub(last) >= every {
				last = now
				opt.Progress(m.progress())
			}
		}
	}
}

func (m *monitor) progress() Progress {
	return Progress{Depth: int(m.depth.Load()), Distinct: m.distinct.Load(),
		Transitions: m.transitions.Load(), Frontier: int(m.frontier.Load()),
		Elapsed: time.Since(m.start), HeapBytes: m.heap.Load()}
}

// Search explores every op sequence of up to opt.Depth ops from the initial state breadth-first,
// level by level, so the first finding is on a shortest sequence. States are deduplicated by
// fingerprint; only the frontier holds full nodes. Workers expand chunks of the frontier in
// parallel; chunks are merged in canonical (parent index, op index) order, so the distinct-state
// count, the frontier order and the finding are the same for every worker count.
//
// An error is either the root's (bad configuration) or an *InternalError (a recovered panic).
func Search(ctx context.Context, root Root, opt Options) (out *Outcome, err error) {
	defer catch("search", &err)
	if opt.Depth < 1 {
		return nil, fmt.Errorf("depth must be at least 1, got %d", opt.Depth)
	}
	if len(opt.Ops) == 0 {
		return nil, fmt.Errorf("empty op alphabet")
	}
	if len(opt.Ops) > math.MaxUint16 {
		return nil, fmt.Errorf("alphabet of %d ops is too large", len(opt.Ops))
	}
	if opt.Shard.Active() && (opt.Shard.Index < 0 || opt.Shard.Index >= opt.Shard.Count) {
		return nil, fmt.Errorf("shard %s: index out of range", opt.Shard)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	mon := &monitor{start: time.Now()}
	mon.sample(opt.MaxMemory)
	defer startMonitor(mon, &opt)()

	r, f0, err := root()
	if err != nil {
		return nil, err
	}
	out = &Outcome{}
	out.Workers = workers
	out.Alphabet = len(opt.Ops)
	out.Shard = opt.Shard
	visited := NewFPSet(0)
	fp0 := r.Fingerprint()
	visited.Add(fp0)
	out.Distinct = 1
	mon.distinct.Store(1)
	finish := func() { out.finish(mon, visited) }
	if f0 != nil {
		out.Finding = f0
		out.Complete = true
		finish()
		return out, nil
	}
	frontier := []*fnode{{node: r, fp: fp0}}
	prefixDone := !opt.Shard.Active()
	splitAt := ShardPrefixFactor * opt.Shard.Count
	if opt.ShardPrefix > 0 {
		splitAt = opt.ShardPrefix
	}
	level := 0
	for ; level < opt.Depth; level++ {
		if len(frontier) == 0 {
			out.Exhausted = true
			break
		}
		if !prefixDone && len(frontier) >= splitAt {
			prefixDone = true
			out.PrefixDepth = level
			out.PrefixStates = out.Distinct
			frontier = shardSlice(frontier, opt.Shard)
		}
		mon.depth.Store(int64(level))
		mon.frontier.Store(int64(len(frontier)))
		next, lv, stop, err := expand(ctx, level, frontier, visited, &opt, workers, mon, out)
		if err != nil {
			return nil, err
		}
		out.Levels = append(out.Levels, lv)
		frontier = nil
		if out.Finding != nil {
			out.DepthReached = level
			out.Complete = true
			finish()
			return out, nil
		}
		if stop != "" {
			out.DepthReached = level
			out.StopReason = stop
			finish()
			return out, nil
		}
		for _, n := range next {
			visited.Add(n.fp)
		}
		frontier = next
	}
	if len(frontier) == 0 && level < opt.Depth {
		out.Exhausted = true
	}
	if !prefixDone {
		// The bound ended before the frontier was large enough to split: every shard did the
		// whole search.
		out.PrefixDepth = level
		out.PrefixStates = out.Distinct
	}
	out.DepthReached = level
	out.Complete = true
	finish()
	return out, nil
}

// expand checks every transition out of frontier (states at distance level) and returns the new
// states at distance level+1 in canonical order. It records a finding in out and stops at it.
// startMonitor runs mon (progress, memory bound) until the returned stop function is called.
func startMonitor(mon *monitor, opt *Options) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); mon.run(done, opt) }()
	return func() {
		close(done)
		wg.Wait()
	}
}

// finish fills in the run's statistics.
func (out *Outcome) finish(mon *monitor, set *FPSet) {
	mon.sample(0)
	out.Elapsed = time.Since(mon.start)
	out.VisitedBytes = set.Bytes()
	out.BytesPerState = set.BytesPerState()
	out.CollisionProb = CollisionProbability(out.Distinct)
	out.PeakHeap = mon.peakHeap.Load()
	out.PeakSys = mon.peakSys.Load()
}

func expand(ctx context.Context, level int, frontier []*fnode, visited *FPSet, opt *Options,
	workers int, mon *monitor, out *Outcome) (next []*fnode, lv LevelStats, stop string, err error) {
	ops := opt.Ops
	A := len(ops)
	lv.Depth = level
	lv.Frontier = len(frontier)
	per := 64
	if workers > 1 {
		per = len(frontier) / (workers * 32)
		if per < 1 {
			per = 1
		}
		if per > 64 {
			per = 64
		}
	}
	nChunks := (len(frontier) + per - 1) / per
	chunks := make([]*chunk, nChunks)
	for c := range chunks {
		lo := c * per
		hi := min(lo+per, len(frontier))
		chunks[c] = &chunk{lo: lo, hi: hi, done: make(chan struct{})}
	}
	var (
		nextChunk atomic.Int64
		stopAt    atomic.Int64 // lowest chunk index with a finding
		abort     atomic.Bool
		tokens    = make(chan struct{}, 2*workers+2)
		wg        sync.WaitGroup
	)
	stopAt.Store(math.MaxInt64)
	work := func(c *chunk) {
		defer close(c.done)
		defer catch("worker", &c.err)
		for i := c.lo; i < c.hi; i++ {
			if abort.Load() {
				c.skipped = true
				return
			}
			parent := frontier[i]
			// A node must still be the state that was fingerprinted. If not, a machine's Clone
			// shares memory with another state (e.g. a slice's backing array), and both the dedup
			// and any counterexample would be wrong: stop with an internal error.
			if fp := parent.node.Fingerprint(); fp != parent.fp {
				c.err = &InternalError{Where: "search", Value: fmt.Sprintf(
					"the state reached by %v changed after it was recorded (fingerprint %#x, now %#x): "+
						"a machine's Clone is not a deep copy, or Apply/Fingerprint is not deterministic",
					pathOps(ops, parent.path), parent.fp, fp)}
				return
			}
			for j := range ops {
				child := parent.node.Clone()
				var (
					f     *Finding
					fp    uint64
					fresh bool
				)
				if ss, ok := child.(seenStepper); ok {
					f, fp, fresh = ss.StepSeen(level, ops[j], visited.Has)
				} else if f = child.Step(level, ops[j]); f == nil {
					fp = child.Fingerprint()
					fresh = !visited.Has(fp)
				}
				if f != nil {
					c.found = f
					c.fpos = i*A + j
					c.fpath = appendPath(parent.path, j)
					return
				}
				if !fresh {
					continue
				}
				c.kids = append(c.kids, kid{fnode{child, fp, appendPath(parent.path, j)}, i*A + j})
			}
		}
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				tokens <- struct{}{}
				c := nextChunk.Add(1) - 1
				if c >= int64(nChunks) || abort.Load() || c > stopAt.Load() {
					select { // give the token back unless the merger's drain took it
					case <-tokens:
					default:
					}
					return
				}
				ch := chunks[c]
				work(ch)
				if ch.found != nil {
					for {
						cur := stopAt.Load()
						if c >= cur || stopAt.CompareAndSwap(cur, c) {
							break
						}
					}
				}
			}
		}()
	}
	defer func() {
		abort.Store(true)
		// Drain tokens so that blocked workers can observe abort and exit.
		go func() {
			for range tokens {
			}
		}()
		wg.Wait()
		close(tokens)
	}()

	lvl := NewFPSet(len(frontier))
	baseTransitions := out.Transitions
	for c := 0; c < nChunks; c++ {
		ch := chunks[c]
		select {
		case <-ch.done:
		case <-ctx.Done():
			return next, lv, StopInterrupted, nil
		}
		<-tokens
		if ch.err != nil {
			return nil, lv, "", ch.err
		}
		if ch.skipped {
			// Only an abort skips work, and only this goroutine aborts before returning.
			return nil, lv, "", &InternalError{Value: "chunk skipped without abort", Where: "search"}
		}
		for _, k := range ch.kids {
			if !lvl.Add(k.fp) {
				continue
			}
			next = append(next, &fnode{k.node, k.fp, k.path})
			out.Distinct++
			lv.NewStates++
			if opt.MaxStates > 0 && out.Distinct >= opt.MaxStates {
				lv.Transitions = int64(k.pos + 1)
				out.Transitions = baseTransitions + lv.Transitions
				return next, lv, StopMaxStates, nil
			}
		}
		if ch.found != nil {
			lv.Transitions = int64(ch.fpos + 1)
			out.Transitions = baseTransitions + lv.Transitions
			out.Finding = ch.found
			out.Path = pathOps(ops, ch.fpath)
			return next, lv, "", nil
		}
		for i := ch.lo; i < ch.hi; i++ {
			frontier[i] = nil // let the GC take parents once merged
		}
		chunks[c] = nil
		lv.Transitions = int64(ch.hi * A)
		out.Transitions = baseTransitions + lv.Transitions
		mon.distinct.Store(out.Distinct)
		mon.transitions.Store(out.Transitions)
		if mon.overMemory.Load() {
			return next, lv, StopMaxMemory, nil
		}
		if ctx.Err() != nil {
			return next, lv, StopInterrupted, nil
		}
	}
	return next, lv, "", nil
}

func appendPath(p []uint16, j int) []uint16 {
	out := make([]uint16, len(p)+1)
	copy(out, p)
	out[len(p)] = uint16(j)
	return out
}

func pathOps(ops []mcheck.Op, p []uint16) []mcheck.Op {
	out := make([]mcheck.Op, len(p))
	for i, j := range p {
		out[i] = ops[j]
	}
	return out
}

// shardSlice is the part of the split frontier that shard s owns: a contiguous range of the
// canonical order, [i*N/n, (i+1)*N/n). Neighbours in canonical order tend to be siblings (children
// of one parent), whose descendants overlap most, so keeping them in one shard lets the shard's
// own dedup absorb most of the overlap.
func shardSlice(frontier []*fnode, s ShardSpec) []*fnode {
	n := len(frontier)
	lo := s.Index * n / s.Count
	hi := (s.Index + 1) * n / s.Count
	return frontier[lo:hi:hi]
}
