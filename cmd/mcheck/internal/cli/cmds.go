package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
	"github.com/spf13/pflag"
)

// readTrace reads a trace file; every failure is bad input.
func readTrace(path string) (*mcheck.Trace, error) {
	t, err := mcheck.ReadTraceFile(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return t, nil
}

func oneArg(fs *pflag.FlagSet, what string) (string, error) {
	switch fs.NArg() {
	case 0:
		return "", usagef("%s: missing %s (see mcheck %s --help)", fs.Name(), what, fs.Name())
	case 1:
		return fs.Arg(0), nil
	}
	return "", usagef("%s: want one %s, got %d arguments", fs.Name(), what, fs.NArg())
}

func runReplay(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("replay", pflag.ContinueOnError)
	quiet := fs.Bool("quiet", false, "print only the outcome, not every step")
	if done, err := parseFlags(e, fs, args, `usage: mcheck replay FILE

Re-runs the trace on a fresh model and implementation pair: prints each step's op, both results and
what changed in the model's snapshot, then the finding (exit 1) or "pass" (exit 0), and whether that
matches the trace's "# expect:" header.`); done || err != nil {
		return ExitOK, err
	}
	path, err := oneArg(fs, "trace FILE")
	if err != nil {
		return 0, err
	}
	t, err := readTrace(path)
	if err != nil {
		return 0, err
	}
	p, err := t.ResolveProfile()
	if err != nil {
		return 0, usagef("%s: %v", path, err)
	}
	if err := validateInject(t.Inject); err != nil {
		return 0, err
	}
	w := e.stdout
	inj := "-"
	if len(t.Inject) > 0 {
		inj = strings.Join(t.Inject, ",")
	}
	fmt.Fprintf(w, "replay %s: %s, inject %s, %d ops\n", path, describeProfile(&p), inj, len(t.Ops))
	f, err := checker.ReplaySteps(p, t.Inject, t.Ops, func(s checker.StepInfo) {
		if *quiet {
			return
		}
		line := ""
		if s.Index < len(t.Lines) {
			line = fmt.Sprintf("  (line %d)", t.Lines[s.Index])
		}
		fmt.Fprintf(w, "%3d. %s%s\n", s.Index+1, s.Op, line)
		if s.Model == s.Impl {
			fmt.Fprintf(w, "     result: %s (model and impl)\n", s.Model)
		} else {
			fmt.Fprintf(w, "     result: model %s, impl %s\n", s.Model, s.Impl)
		}
		d := mcheck.Diff(s.Prev, s.Next, "before", "after", 0)
		if len(d) == 0 {
			fmt.Fprintf(w, "     model snapshot unchanged\n")
		}
		for _, l := range d {
			fmt.Fprintf(w, "     %s\n", l)
		}
	})
	if err != nil {
		if _, ok := err.(*checker.InternalError); ok {
			return 0, err
		}
		return 0, usagef("%s: %v", path, err)
	}
	code := ExitOK
	outcome := "pass"
	if f != nil {
		code = ExitFinding
		outcome = f.Expect()
		fmt.Fprintf(w, "finding: %s\n", f)
	} else {
		fmt.Fprintf(w, "pass: all %d steps agree and every invariant holds\n", len(t.Ops))
	}
	if t.Expect != "" {
		if checker.ExpectMatches(t.Expect, f) {
			fmt.Fprintf(w, "expect: %s: matches\n", t.Expect)
		} else {
			fmt.Fprintf(w, "expect: %s: DOES NOT MATCH (outcome: %s)\n", t.Expect, outcome)
		}
	}
	return code, nil
}

func runExplain(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("explain", pflag.ContinueOnError)
	fs.SortFlags = false
	prof := fs.String("profile", "tiny-x86", "machine profile")
	var blockSize int64
	fs.Var(sizeValue{&blockSize}, "block-size", "memory block size in bytes (128M, 1G, 256MiB; a power-of-two number of sections); default: the profile's")
	kernel := fs.String("kernel", "", "kernel release (default: the profile's)")
	mode := fs.String("memmap-on-memory", "", "off, on or force (default: the profile's)")
	if done, err := parseFlags(e, fs, args, `usage: mcheck explain --profile P [--block-size S] [--kernel K] [--memmap-on-memory M]

Explains the memmap_on_memory arithmetic of a profile: the memmap pages one memory block needs,
the pages set aside in on and force mode, the force-mode waste, and whether the kernel supports
memmap_on_memory for a one-block and a multi-block add (and why not).`); done || err != nil {
		return ExitOK, err
	}
	if fs.NArg() > 0 {
		return 0, usagef("explain: unexpected argument %q", fs.Arg(0))
	}
	base, err := mcheck.LookupProfile(*prof)
	if err != nil {
		return 0, usagef("%v", err)
	}
	if blockSize != 0 {
		secBytes := int64(base.PagesPerSection()) << base.PageShift
		if blockSize%secBytes != 0 {
			return 0, usagef("--block-size %s: not a multiple of the section size (%s)", fmtBytes(uint64(blockSize)), fmtBytes(uint64(secBytes)))
		}
		base.SectionsPerBlock = int(blockSize / secBytes)
		if err := base.Validate(); err != nil {
			return 0, usagef("--block-size %s: %v", fmtBytes(uint64(blockSize)), err)
		}
	}
	p, err := applyKnobs(base, *kernel, *mode, 0, "", "")
	if err != nil {
		return 0, err
	}
	w := e.stdout
	page := int64(p.PageBytes())
	fmt.Fprintf(w, "%s: %s, %s pages, struct page %d bytes\n", p.Name, p.Arch, fmtBytes(uint64(page)), p.StructPageBytes)
	fmt.Fprintf(w, "  section %s (%d pages), memory block %s = %d section(s) = %d pages, pageblock %d pages, PMD %d pages\n",
		fmtBytes(uint64(int64(p.PagesPerSection())*page)), p.PagesPerSection(), fmtBytes(uint64(p.BlockBytes())),
		p.SectionsPerBlock, p.BlockPages(), p.PageblockPages(), p.PMDPages())
	fmt.Fprintf(w, "  kernel %s (%s), memmap_on_memory=%s\n", p.Kernel, p.KP(), p.Mode)
	memmapBytes := int64(p.BlockPages()) * int64(p.StructPageBytes)
	fmt.Fprintf(w, "memmap of one block: %d bytes = %d pages (PFN_UP(%d * %d / %d))\n",
		memmapBytes, p.MemmapPagesExact(), p.BlockPages(), p.StructPageBytes, page)
	for _, m := range []mcheck.Mode{mcheck.ModeOn, mcheck.ModeForce} {
		q := p
		q.Mode = m
		if err := q.Validate(); err != nil {
			fmt.Fprintf(w, "mode %-5s: not available: %v\n", m, err)
			continue
		}
		fmt.Fprintf(w, "mode %-5s: set aside %d pages per block (%s of %s), force waste %d pages\n", m,
			q.MemmapOnMemoryPages(), fmtBytes(uint64(int64(q.MemmapOnMemoryPages())*page)), fmtBytes(uint64(q.BlockBytes())), q.ForceWaste())
		for _, nr := range []int{1, 2} {
			ok, why := q.SupportsMemmapOnMemory(nr)
			if ok {
				fmt.Fprintf(w, "            add of %d block(s): supported\n", nr)
			} else {
				fmt.Fprintf(w, "            add of %d block(s): not supported: %s\n", nr, why)
			}
		}
	}
	return ExitOK, nil
}

func runProfiles(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("profiles", pflag.ContinueOnError)
	if done, err := parseFlags(e, fs, args, "usage: mcheck profiles\n\nLists the built-in machine profiles with their key numbers."); done || err != nil {
		return ExitOK, err
	}
	if fs.NArg() > 0 {
		return 0, usagef("profiles: unexpected argument %q", fs.Arg(0))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tARCH\tPAGE\tSECTION\tBLOCK\tSUBSEC\tPAGEBLOCK\tBOOT\tHOTPLUG\tKERNEL\tMMOM\tHVO\tMEMMAP/BLOCK\tSCALED")
	for _, n := range mcheck.ProfileNames() {
		p, _ := mcheck.LookupProfile(n)
		page := uint64(p.PageBytes())
		yes := func(b bool) string {
			if b {
				return "yes"
			}
			return "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d pg\t%d pg\t%d blk\t%d blk @%d\t%s (%s)\t%s\t%s\t%d pg\t%s\n",
			p.Name, p.Arch, fmtBytes(page), fmtBytes(uint64(p.PagesPerSection())*page), fmtBytes(uint64(p.BlockBytes())),
			p.PagesPerSubsection(), p.PageblockPages(), p.BootBlocks, p.HotplugBlocks, p.HotplugStart,
			p.Kernel, p.KP(), p.Mode, yes(p.HVO), p.MemmapPagesExact(), yes(p.Scaled))
	}
	return ExitOK, tw.Flush()
}

func runOps(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("ops", pflag.ContinueOnError)
	prof := fs.String("profile", "tiny-x86", "machine profile whose concrete ops to enumerate")
	blocks := fs.Int("blocks", 0, "number of hot-pluggable blocks (default: the profile's)")
	opsFlag := fs.String("ops", "all", "restrict to these op kinds (as mcheck --ops)")
	if done, err := parseFlags(e, fs, args, "usage: mcheck ops [--profile P]\n\nLists the op alphabet and the concrete ops the search and simulation enumerate for a profile."); done || err != nil {
		return ExitOK, err
	}
	if fs.NArg() > 0 {
		return 0, usagef("ops: unexpected argument %q", fs.Arg(0))
	}
	p, err := resolveProfile(*prof, "", "", *blocks, "", "")
	if err != nil {
		return 0, err
	}
	kinds, err := checker.ParseOpsFlag(*opsFlag)
	if err != nil {
		return 0, usagef("%v", err)
	}
	w := e.stdout
	fmt.Fprintf(w, "op alphabet (trace form: name key=value ...):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  OP\tCONCRETE\tIN SETS\tWHAT\n")
	def, core := map[mcheck.OpKind]bool{}, map[mcheck.OpKind]bool{}
	for _, k := range checker.DefaultOpKinds {
		def[k] = true
	}
	for _, k := range checker.CoreOpKinds {
		core[k] = true
	}
	all := checker.Alphabet(&p, nil)
	count := map[mcheck.OpKind]int{}
	for _, op := range all {
		count[op.Kind]++
	}
	for k, s := range mcheck.Specs {
		keys := ""
		for _, key := range s.Keys {
			keys += " " + key + "=…"
		}
		var sets []string
		if def[mcheck.OpKind(k)] {
			sets = append(sets, "default")
		}
		if core[mcheck.OpKind(k)] {
			sets = append(sets, "core")
		}
		d := strings.Join(sets, ",")
		fmt.Fprintf(tw, "  %s%s\t%d\t%s\t%s\n", s.Name, keys, count[mcheck.OpKind(k)], d, s.Help)
	}
	tw.Flush()
	nCore := len(checker.Alphabet(&p, checker.CoreOpKinds))
	nDefault := len(checker.Alphabet(&p, checker.DefaultOpKinds))
	sel := checker.Alphabet(&p, kinds)
	fmt.Fprintf(w, "\nconcrete ops for %s (%d hot-pluggable blocks from block %d): %d in all (--ops all), %d in the default set, %d in --ops core\n",
		p.Name, p.HotplugBlocks, p.HotplugStart, len(all), nDefault, nCore)
	fmt.Fprintf(w, "(parameters: every hot-pluggable block; add/remove also spanning all of them; memremap at the boot\n"+
		" hole, at the first hot-pluggable subsection and the whole first hot-pluggable section with a driver\n"+
		" altmap; alloc_contig and the queries at each block's first and second pageblock; see checker.Alphabet)\n")
	fmt.Fprintf(w, "\n%d selected by --ops %s:\n", len(sel), *opsFlag)
	for i, op := range sel {
		fmt.Fprintf(w, "  %3d  %s\n", i, op)
	}
	return ExitOK, nil
}

func runMerge(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("merge", pflag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the merged summary as JSON")
	if done, err := parseFlags(e, fs, args, `usage: mcheck merge FILE...

Combines the --json summaries of the shards of one search (mcheck --shard i/n --json > FILE).
Every shard 0..n-1 must be given once, with equal configurations. Exit 1 if any shard found
something (the shortest counterexample is reported), else 0; the merged summary is partial if a
shard was. See docs/sharding.md.`); done || err != nil {
		return ExitOK, err
	}
	if fs.NArg() == 0 {
		return 0, usagef("merge: no summary files given")
	}
	var in []*checker.Summary
	for _, path := range fs.Args() {
		s, err := checker.ReadSummaryFile(path)
		if err != nil {
			return 0, usagef("%v", err)
		}
		in = append(in, s)
	}
	m, err := checker.MergeSummaries(in)
	if err != nil {
		return 0, usagef("%v", err)
	}
	if *asJSON {
		if err := m.WriteJSON(e.stdout); err != nil {
			return 0, err
		}
		return m.ExitCode(), nil
	}
	w := e.stdout
	c := m.Config
	fmt.Fprintf(w, "merged %d summaries: %s (kernel %s, memmap_on_memory=%s, %d blocks), %d ops, depth %d\n",
		len(in), c.Profile, c.Kernel, c.MemmapOnMemory, c.Blocks, c.Alphabet, c.Depth)
	switch m.Result {
	case checker.ResultPass:
		fmt.Fprintf(w, "no invariant violation or divergence within depth %d in any shard\n", m.DepthReached)
	case checker.ResultPartial:
		fmt.Fprintf(w, "PARTIAL: bound not completed (%s) in at least one shard; nothing found\n", m.StopReason)
	default:
		f := m.Finding
		shard := 0
		if f.Shard != nil {
			shard = *f.Shard
		}
		fmt.Fprintf(w, "%s (shard %d): %d ops:\n", strings.ToUpper(m.Result), shard, f.Length)
		for i, op := range f.Path {
			fmt.Fprintf(w, "  %2d. %s\n", i+1, op)
		}
		fmt.Fprintf(w, "finding: %s\n", f.Text)
		if f.TraceFile != "" {
			fmt.Fprintf(w, "trace: %s (written by that shard)\n", f.TraceFile)
		}
	}
	fmt.Fprintf(w, "  distinct states    %s (upper bound: states reached by several shards count once per shard)\n", comma(m.DistinctStates))
	fmt.Fprintf(w, "  transitions        %s\n", comma(m.Transitions))
	fmt.Fprintf(w, "  longest shard      %.2fs\n", m.ElapsedSeconds)
	fmt.Fprintf(w, "  collision prob.    %.2g\n", m.CollisionProb)
	return m.ExitCode(), nil
}
