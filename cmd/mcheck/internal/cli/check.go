package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// signalHook, if set (tests), is called once the signal handlers are installed.
var signalHook func()

type checkOpts struct {
	depth     int
	profile   string
	kernel    string
	mode      string
	blocks    int
	hvo       string
	zoneDev   string
	ops       string
	workers   int
	out       string
	json      bool
	quiet     bool
	progress  bool
	seed      uint64
	inject    []string
	maxStates int64
	maxMemory int64
	simulate  bool
	steps     int
	walks     int
	shard     string
	shardAt   int
}

func checkFlags(o *checkOpts) *pflag.FlagSet {
	if o == nil {
		o = &checkOpts{}
	}
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.IntVar(&o.depth, "depth", 8, "explore every op sequence of up to this many ops (breadth-first: a counterexample found is a shortest one)")
	fs.StringVar(&o.profile, "profile", "tiny-x86", "machine profile (mcheck profiles lists them)")
	fs.StringVar(&o.kernel, "kernel", "", "kernel release whose semantics to check, e.g. 6.1 or 6.8 (default: the profile's)")
	fs.StringVar(&o.mode, "memmap-on-memory", "", "memory_hotplug.memmap_on_memory: off, on or force (force needs 6.6+; default: the profile's)")
	fs.IntVar(&o.blocks, "blocks", 0, "number of hot-pluggable memory blocks (default: the profile's; the alphabet grows with it)")
	fs.StringVar(&o.hvo, "hvo", "", "hugetlb_free_vmemmap: on or off (default: the profile's)")
	fs.StringVar(&o.zoneDev, "zone-device", "", "CONFIG_ZONE_DEVICE: on or off (default: the profile's)")
	fs.StringVar(&o.ops, "ops", "default", "comma list of op kinds (and sets) the alphabet is restricted to. "+
		"\"default\" and \"all\": every kind (49 concrete ops on tiny-x86; depth 8: 35,386 states, "+
		"about 3-4 s on 2 cores); \"core\": add_memory, remove_memory, online, offline, pin, unpin, the hugetlb "+
		"ops and alloc_contig (30 ops; depth 8 in about a second). Names and sets combine, e.g. "+
		"core,memremap,memunmap; mcheck ops lists the concrete ops")
	fs.IntVar(&o.workers, "workers", runtime.NumCPU(), "parallel workers (results do not depend on it)")
	fs.StringVar(&o.out, "out", "./mcheck-out", "directory the counterexample trace is written to (created when needed)")
	fs.BoolVar(&o.json, "json", false, "print a machine-readable JSON summary (and finding) on stdout instead of text")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress, and only the result line (plus the counterexample, if any)")
	fs.BoolVar(&o.progress, "progress", false, "print progress on stderr every second even when stderr is not a terminal")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed of --simulate (the exhaustive search does not use it)")
	fs.StringSliceVar(&o.inject, "inject", nil, "impl fault switches NAME[,NAME] to turn on (deliberate bugs, for demonstrating the checker)")
	fs.Int64Var(&o.maxStates, "max-states", 0, "stop after this many distinct states with a partial report (exit 0, \"bound not completed\"); 0 = no limit")
	fs.Var(sizeValue{&o.maxMemory}, "max-memory", "stop when the Go heap exceeds this size (512M, 2G, ...) with a partial report (exit 0, \"bound not completed\"); 0 = no limit")
	fs.BoolVar(&o.simulate, "simulate", false, "random walks instead of the exhaustive search (see --steps, --walks, --seed)")
	fs.IntVar(&o.steps, "steps", 50, "--simulate: ops per walk")
	fs.IntVar(&o.walks, "walks", 1000, "--simulate: number of walks")
	fs.StringVar(&o.shard, "shard", "", "i/n: run only shard i (0-based) of n of the search; combine the --json summaries with mcheck merge (docs/sharding.md)")
	fs.IntVar(&o.shardAt, "shard-prefix", 0, "with --shard: split the search once the frontier holds this many states (default 64 per shard; every shard must use the same value)")
	return fs
}

const checkUsage = `usage: mcheck [check] [flags]

Explores every sequence of up to --depth ops (from the op alphabet of the profile, see mcheck ops)
from the initial state, running the reference model and the implementation in lockstep. After every
op the results, the observable snapshots and the invariants are compared. Exit 0: nothing found
within the bound; exit 1: the shortest counterexample is printed and written to --out as a trace
(replay it with mcheck replay FILE); exit 2: bad usage; exit 3: internal error; exit 130:
interrupted (partial summary). --max-states/--max-memory stop early with exit 0 and say
"bound not completed".`

func parseOnOff(flag, v string) (*bool, error) {
	switch strings.ToLower(v) {
	case "":
		return nil, nil
	case "on", "1", "y", "yes", "true":
		b := true
		return &b, nil
	case "off", "0", "n", "no", "false":
		b := false
		return &b, nil
	}
	return nil, usagef("--%s %q: want on or off", flag, v)
}

// resolveProfile applies the command-line knobs to a named profile.
func resolveProfile(name, kernel, mode string, blocks int, hvo, zoneDev string) (mcheck.Profile, error) {
	p, err := mcheck.LookupProfile(name)
	if err != nil {
		return p, usagef("%v", err)
	}
	return applyKnobs(p, kernel, mode, blocks, hvo, zoneDev)
}

// applyKnobs applies the command-line knobs (empty or 0: keep the profile's) to p.
func applyKnobs(p mcheck.Profile, kernel, mode string, blocks int, hvo, zoneDev string) (mcheck.Profile, error) {
	var err error
	var o mcheck.Overrides
	if kernel != "" {
		k, err := mcheck.ParseKernel(kernel)
		if err != nil {
			return p, usagef("--kernel: %v", err)
		}
		o.Kernel = &k
	}
	if mode != "" {
		m, err := mcheck.ParseMode(mode)
		if err != nil {
			return p, usagef("--memmap-on-memory: %v", err)
		}
		o.Mode = &m
	}
	if blocks != 0 {
		if blocks < 0 {
			return p, usagef("--blocks %d: must be at least 1", blocks)
		}
		o.Blocks = &blocks
	}
	if o.HVO, err = parseOnOff("hvo", hvo); err != nil {
		return p, err
	}
	if o.ZoneDevice, err = parseOnOff("zone-device", zoneDev); err != nil {
		return p, err
	}
	q, err := p.WithOverrides(o)
	if err != nil {
		return q, usagef("%v", err)
	}
	return q, nil
}

func parseShard(s string) (checker.ShardSpec, error) {
	if s == "" {
		return checker.ShardSpec{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return checker.ShardSpec{}, usagef("--shard %q: want i/n with 0 <= i < n, e.g. 0/4", s)
	}
	return checker.ShardSpec{Index: i, Count: n}, nil
}

// checkOutDir rejects an --out that cannot become a directory, before the search runs.
func checkOutDir(dir string) error {
	d := filepath.Clean(dir)
	for {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return usagef("--out %s: %s is not a directory", dir, d)
			}
			return nil
		}
		if !os.IsNotExist(err) {
			return usagef("--out %s: %v", dir, err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil
		}
		d = parent
	}
}

func runCheck(e *env, args []string) (int, error) {
	o := &checkOpts{}
	fs := checkFlags(o)
	if done, err := parseFlags(e, fs, args, checkUsage); done || err != nil {
		return ExitOK, err
	}
	if fs.NArg() > 0 {
		return 0, usagef("unexpected argument %q (see mcheck --help)", fs.Arg(0))
	}
	// The search allocates short-lived states at a high rate; a larger GC target trades memory
	// (bounded by --max-memory) for about 20% of the run time and lets workers scale. GOGC wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if !o.simulate && o.depth <= 0 {
		return 0, usagef("--depth %d: must be at least 1", o.depth)
	}
	if o.simulate && (o.steps <= 0 || o.walks <= 0) {
		return 0, usagef("--simulate needs --steps >= 1 and --walks >= 1")
	}
	if o.workers <= 0 {
		return 0, usagef("--workers %d: must be at least 1", o.workers)
	}
	if o.maxStates < 0 {
		return 0, usagef("--max-states %d: must not be negative", o.maxStates)
	}
	p, err := resolveProfile(o.profile, o.kernel, o.mode, o.blocks, o.hvo, o.zoneDev)
	if err != nil {
		return 0, err
	}
	kinds, err := checker.ParseOpsFlag(o.ops)
	if err != nil {
		return 0, usagef("%v", err)
	}
	shard, err := parseShard(o.shard)
	if err != nil {
		return 0, err
	}
	if shard.Active() && o.simulate {
		return 0, usagef("--shard applies to the exhaustive search, not --simulate (give each job its own --seed)")
	}
	if err := validateInject(o.inject); err != nil {
		return 0, err
	}
	if err := checkOutDir(o.out); err != nil {
		return 0, err
	}
	ops := checker.Alphabet(&p, kinds)
	if len(ops) == 0 {
		return 0, usagef("--ops %s: no concrete ops for profile %s", o.ops, p.Name)
	}
	root := checker.PairRoot(p, o.inject)
	// Probe the configuration once, so that a bad one is a usage error and not a search error.
	if _, _, err := root(); err != nil {
		return 0, usagef("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	var sigWG sync.WaitGroup
	sigWG.Add(1)
	go func() {
		defer sigWG.Done()
		select {
		case <-ctx.Done(): // a signal: stop() has not run yet
			// Restore the default action, so that a second ^C kills at once.
			stop()
			if !o.json {
				fmt.Fprintln(e.stderr, "mcheck: interrupted; finishing with a partial summary (^C again to kill)")
			}
		case <-finished:
		}
	}()
	defer func() {
		close(finished)
		sigWG.Wait()
	}()
	if signalHook != nil {
		signalHook()
	}

	tty := isTerminal(e.stderr)
	var progress func(checker.Progress)
	pp := &progressPrinter{w: e.stderr, tty: tty, simulate: o.simulate}
	if !o.quiet && (o.progress || tty) {
		progress = pp.print
	}
	if o.maxMemory > 0 {
		// Let the GC work harder near the limit before the search gives up on it.
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(o.maxMemory))
	}

	cfg := checker.NewSummaryConfig(&p, o.inject, kinds, len(ops))
	cfg.Seed = o.seed
	mode := "search"
	var out *checker.Outcome
	if o.simulate {
		mode = "simulate"
		cfg.Steps, cfg.Walks = o.steps, o.walks
		out, err = checker.Simulate(ctx, root, checker.SimOptions{Steps: o.steps, Walks: o.walks, Seed: o.seed,
			Ops: ops, Workers: o.workers, Progress: progress, MaxMemory: o.maxMemory})
	} else {
		cfg.Depth = o.depth
		cfg.MaxStates = o.maxStates
		cfg.ShardPrefix = o.shardAt
		out, err = checker.Search(ctx, root, checker.Options{Depth: o.depth, Ops: ops, Workers: o.workers,
			MaxStates: o.maxStates, MaxMemory: o.maxMemory, Shard: shard, ShardPrefix: o.shardAt, Progress: progress})
	}
	pp.done()
	if err != nil {
		if _, ok := err.(*checker.InternalError); ok {
			return 0, err
		}
		return 0, &internalError{err: err}
	}

	traceFile := ""
	var replayed []checker.StepInfo
	var replayErr error
	if out.Finding != nil {
		// Re-run the path on a fresh pair: it shows each step's results and confirms that the
		// counterexample replays before it is written.
		rf, err := checker.ReplaySteps(p, o.inject, out.Path, func(s checker.StepInfo) { replayed = append(replayed, s) })
		switch {
		case err != nil:
			replayErr = err
		case rf == nil || rf.String() != out.Finding.String():
			replayErr = fmt.Errorf("the counterexample %v did not reproduce on a fresh replay (got: %v): "+
				"a machine's Clone is not a deep copy, or Apply is not deterministic", out.Path, rf)
		}
		if replayErr == nil {
			comment := fmt.Sprintf("found by mcheck %s", strings.Join(reproArgs(o, &p, mode), " "))
			t := checker.CounterexampleTrace(p, o.inject, out.Finding, out.Path, comment)
			traceFile, err = checker.WriteTrace(o.out, t, out.Finding)
			if err != nil {
				// Still report the finding (exit 1); the ops are printed below.
				fmt.Fprintf(e.stderr, "mcheck: cannot write the counterexample trace: %v\n", err)
				traceFile = ""
			}
		}
	}

	sum := checker.NewSummary(mode, cfg, out, traceFile)
	if o.json {
		if replayErr != nil {
			sum.Error = replayErr.Error()
		}
		if err := sum.WriteJSON(e.stdout); err != nil {
			return 0, err
		}
	} else {
		printSummary(e.stdout, sum, out, &p, o, replayed, replayErr)
	}
	if replayErr != nil {
		return 0, &internalError{err: replayErr}
	}
	switch {
	case out.Finding != nil:
		return ExitFinding, nil
	case out.StopReason == checker.StopInterrupted:
		return ExitInterrupted, nil
	}
	return ExitOK, nil
}

// reproArgs is the command line that reproduces the run.
func reproArgs(o *checkOpts, p *mcheck.Profile, mode string) []string {
	a := []string{"--profile", p.Name, "--kernel", p.Kernel.String(), "--memmap-on-memory", p.Mode.String(),
		"--blocks", strconv.Itoa(p.HotplugBlocks), "--ops", o.ops}
	if mode == "simulate" {
		a = append(a, "--simulate", "--steps", strconv.Itoa(o.steps), "--walks", strconv.Itoa(o.walks),
			"--seed", strconv.FormatUint(o.seed, 10))
	} else {
		a = append(a, "--depth", strconv.Itoa(o.depth))
	}
	if len(o.inject) > 0 {
		a = append(a, "--inject", strings.Join(o.inject, ","))
	}
	return a
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressPrinter prints a progress line about every second once a run takes longer than two:
// on a terminal it rewrites one line, elsewhere (--progress) it prints one line each time.
type progressPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	simulate bool
	printed  bool
}

func (pp *progressPrinter) print(pr checker.Progress) {
	if pr.Elapsed < 2*time.Second {
		return
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	secs := pr.Elapsed.Seconds()
	var line string
	if pp.simulate {
		line = fmt.Sprintf("mcheck: walks %s  distinct states %s  steps %s  (%s steps/s)  elapsed %s",
			comma(int64(pr.Depth)), comma(pr.Distinct), comma(pr.Transitions),
			comma(int64(float64(pr.Transitions)/secs)), pr.Elapsed.Round(time.Second/10))
	} else {
		line = fmt.Sprintf("mcheck: depth %d  distinct states %s  (%s states/s)  frontier %s  transitions %s  elapsed %s",
			pr.Depth+1, comma(pr.Distinct), comma(int64(float64(pr.Distinct)/secs)), comma(int64(pr.Frontier)),
			comma(pr.Transitions), pr.Elapsed.Round(time.Second/10))
	}
	if pp.tty {
		fmt.Fprintf(pp.w, "\r\x1b[K%s", line)
	} else {
		fmt.Fprintln(pp.w, line)
	}
	pp.printed = true
}

// done ends the progress display (clears the terminal line).
func (pp *progressPrinter) done() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.tty && pp.printed {
		fmt.Fprint(pp.w, "\r\x1b[K")
	}
	pp.printed = false
}

func describeProfile(p *mcheck.Profile) string {
	onoff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("%s (kernel %s, memmap_on_memory=%s, %d hot-pluggable blocks, hvo=%s, zone_device=%s)",
		p.Name, p.Kernel, p.Mode, p.HotplugBlocks, onoff(p.HVO), onoff(p.ZoneDevice))
}

func printSummary(w io.Writer, s *checker.Summary, o *checker.Outcome, p *mcheck.Profile, opts *checkOpts,
	steps []checker.StepInfo, replayErr error) {
	if !opts.quiet {
		what := fmt.Sprintf("depth %d", opts.depth)
		if s.Mode == "simulate" {
			what = fmt.Sprintf("simulation: %d walks of %d steps, seed %d", opts.walks, opts.steps, opts.seed)
		}
		inj := ""
		if len(opts.inject) > 0 {
			inj = ", inject " + strings.Join(opts.inject, ",")
		}
		shard := ""
		if s.Shard != nil {
			shard = fmt.Sprintf(", shard %d/%d", s.Shard.Index, s.Shard.Count)
		}
		fmt.Fprintf(w, "mcheck: %s\n        %d ops (--ops %s), %s, %d workers%s%s\n", describeProfile(p),
			s.Config.Alphabet, opts.ops, what, s.Workers, shard, inj)
	}
	if o.Finding != nil {
		printFinding(w, o, steps, replayErr, s.Finding.TraceFile)
		if !opts.quiet {
			printStats(w, s, o, opts)
		}
		return
	}
	switch {
	case o.StopReason == checker.StopInterrupted:
		fmt.Fprintf(w, "PARTIAL: interrupted after %s distinct states; nothing found so far (bound not completed)\n", comma(o.Distinct))
	case o.StopReason != "":
		fmt.Fprintf(w, "PARTIAL: bound not completed (stopped by --%s): no invariant violation or divergence in %s distinct states, every sequence of up to %d ops checked\n",
			o.StopReason, comma(o.Distinct), o.DepthReached)
	case s.Mode == "simulate":
		fmt.Fprintf(w, "no invariant violation or divergence in %d random walks of %d steps (seed %d)\n", opts.walks, opts.steps, opts.seed)
	case o.Exhausted:
		fmt.Fprintf(w, "no invariant violation or divergence: the state space is exhausted at depth %d (all %s reachable states checked)\n",
			o.DepthReached, comma(o.Distinct))
	default:
		fmt.Fprintf(w, "no invariant violation or divergence within depth %d\n", o.DepthReached)
	}
	if !opts.quiet {
		printStats(w, s, o, opts)
	}
}

func printFinding(w io.Writer, o *checker.Outcome, steps []checker.StepInfo, replayErr error, traceFile string) {
	f := o.Finding
	kind := "divergence"
	if f.Kind == checker.KindInvariant || f.Kind == checker.KindImplCheck {
		kind = "violation"
	}
	if len(o.Path) == 0 {
		fmt.Fprintf(w, "%s in the initial state\n", strings.ToUpper(kind))
	} else if o.Walk > 0 || o.Levels == nil {
		fmt.Fprintf(w, "%s after %d ops:\n", strings.ToUpper(kind), len(o.Path))
	} else {
		fmt.Fprintf(w, "%s: shortest counterexample, %d ops:\n", strings.ToUpper(kind), len(o.Path))
	}
	if len(steps) == len(o.Path) && replayErr == nil {
		width := 0
		for _, s := range steps {
			width = max(width, len(s.Op.String()))
		}
		for _, s := range steps {
			res := fmt.Sprintf("-> %s", s.Model)
			if s.Model != s.Impl {
				res = fmt.Sprintf("-> model %s, impl %s", s.Model, s.Impl)
			}
			fmt.Fprintf(w, "  %2d. %-*s  %s\n", s.Index+1, width, s.Op, res)
		}
	} else {
		for i, op := range o.Path {
			fmt.Fprintf(w, "  %2d. %s\n", i+1, op)
		}
	}
	fmt.Fprintf(w, "finding: %s\n", f)
	if traceFile != "" {
		fmt.Fprintf(w, "trace: %s (replay: mcheck replay %s)\n", traceFile, traceFile)
	}
	if replayErr != nil {
		fmt.Fprintf(w, "warning: %v\n", replayErr)
	}
}

func printStats(w io.Writer, s *checker.Summary, o *checker.Outcome, opts *checkOpts) {
	row := func(k, v string) { fmt.Fprintf(w, "  %-18s %s\n", k, v) }
	row("distinct states", comma(s.DistinctStates))
	if s.Mode == "simulate" {
		row("steps", comma(s.Transitions))
	} else {
		row("transitions", comma(s.Transitions))
		dr := fmt.Sprintf("%d (of %d)", s.DepthReached, opts.depth)
		if o.Finding != nil {
			dr = fmt.Sprintf("%d (every shorter sequence checked)", s.DepthReached)
		}
		row("depth reached", dr)
	}
	if s.Shard != nil {
		row("shard", fmt.Sprintf("%d/%d, prefix depth %d (%s states shared by all shards)",
			s.Shard.Index, s.Shard.Count, s.Shard.PrefixDepth, comma(s.Shard.PrefixStates)))
	}
	row("time", fmt.Sprintf("%.2fs", s.ElapsedSeconds))
	row("states/s", comma(int64(s.StatesPerSec)))
	row("transitions/s", comma(int64(s.TransitionsPerSec)))
	row("visited set", fmt.Sprintf("%s, %.1f bytes/state (fingerprints only)", fmtBytes(uint64(s.VisitedBytes)), s.BytesPerState))
	row("collision prob.", fmt.Sprintf("%.2g (n^2/2^65: two distinct states sharing a 64-bit fingerprint)", s.CollisionProb))
	row("peak memory", fmt.Sprintf("heap %s, sys %s (runtime.MemStats)", fmtBytes(s.PeakHeapBytes), fmtBytes(s.PeakSysBytes)))
}
