package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	malformed := writeFile(t, dir, "bad.trace", "# mcheck trace v1\n# profile: tiny-x86\nadd_memory block=1 nr=zz memmap_on_memory=1\n")
	noMagic := writeFile(t, dir, "nomagic.trace", "add_memory block=1 nr=1 memmap_on_memory=1\n")
	badProfile := writeFile(t, dir, "badprofile.trace", "# mcheck trace v1\n# profile: nosuch\n")
	badJSON := writeFile(t, dir, "bad.json", "{not json")
	notDir := writeFile(t, dir, "file", "x")
	missing := filepath.Join(dir, "does-not-exist.trace")
	for _, tc := range []struct {
		name string
		args []string
		want string // substring of the message
	}{
		{"unknown profile", []string{"--profile", "nosuch"}, "unknown profile"},
		{"depth 0", []string{"--depth", "0"}, "--depth 0"},
		{"depth negative", []string{"--depth=-3"}, "--depth -3"},
		{"depth not a number", []string{"--depth", "eight"}, "invalid argument"},
		{"unknown flag", []string{"--frobnicate"}, "unknown flag"},
		{"unknown shorthand", []string{"-z"}, "unknown shorthand"},
		{"unknown command", []string{"frob"}, "unknown command"},
		{"extra argument", []string{"check", "extra"}, "unexpected argument"},
		{"bad kernel", []string{"--kernel", "4.19"}, "--kernel"},
		{"bad mode", []string{"--memmap-on-memory", "maybe"}, "memmap_on_memory"},
		{"force on old kernel", []string{"--memmap-on-memory", "force", "--kernel", "6.1"}, "force"},
		{"bad blocks", []string{"--blocks", "-1"}, "--blocks"},
		{"unknown op", []string{"--ops", "add_memory,teleport"}, "unknown op"},
		{"bad shard", []string{"--shard", "3/2"}, "--shard"},
		{"bad shard form", []string{"--shard", "x"}, "--shard"},
		{"bad max-memory", []string{"--max-memory", "lots"}, "not a size"},
		{"unknown inject", []string{"--inject", "no-such-fault"}, "unknown impl fault"},
		{"workers 0", []string{"--workers", "0"}, "--workers"},
		{"out is a file", []string{"--out", filepath.Join(notDir, "sub")}, "not a directory"},
		{"simulate steps", []string{"--simulate", "--steps", "0"}, "--steps"},
		{"replay malformed", []string{"replay", malformed}, "bad.trace:3"},
		{"replay no magic", []string{"replay", noMagic}, "not an mcheck trace"},
		{"replay bad profile", []string{"replay", badProfile}, "unknown profile"},
		{"replay unreadable", []string{"replay", missing}, "no such file"},
		{"replay directory", []string{"replay", dir}, "is a directory"},
		{"replay no file", []string{"replay"}, "missing"},
		{"replay two files", []string{"replay", malformed, malformed}, "want one"},
		{"minimize unreadable", []string{"minimize", missing}, "no such file"},
		{"merge bad json", []string{"merge", badJSON}, "not an mcheck JSON summary"},
		{"merge unreadable", []string{"merge", missing}, "no such file"},
		{"merge nothing", []string{"merge"}, "no summary"},
		{"explain unknown profile", []string{"explain", "--profile", "nosuch"}, "unknown profile"},
		{"explain bad block size", []string{"explain", "--block-size", "100M", "--profile", "x86_64-4k"}, "not a multiple"},
		{"explain non-power-of-two blocks", []string{"explain", "--block-size", "384M", "--profile", "x86_64-4k"}, "power-of-two"},
		{"explain bad size", []string{"explain", "--block-size", "big"}, "not a size"},
		{"ops unknown profile", []string{"ops", "--profile", "nosuch"}, "unknown profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, tc.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, out, errs)
			}
			if strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "mcheck: ") {
				t.Errorf("stderr is not one line: %q", errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q does not mention %q", errs, tc.want)
			}
			if strings.Contains(errs, "goroutine") || strings.Contains(errs, "panic") {
				t.Errorf("stack trace on stderr: %q", errs)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"check", "--help"}} {
		code, out, _ := run(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, f := range []string{"--depth", "--profile", "--kernel", "--memmap-on-memory", "--blocks", "--ops",
			"--workers", "--out", "--json", "--quiet", "--seed", "--inject", "--max-states", "--max-memory",
			"--progress", "--simulate", "--steps", "--walks", "--shard"} {
			if !strings.Contains(out, f) {
				t.Errorf("%v: help does not explain %s", args, f)
			}
		}
	}
	code, out, _ := run(t, "help")
	if code != 0 || !strings.Contains(out, "replay") || !strings.Contains(out, "exit codes") {
		t.Errorf("help: %d %q", code, out)
	}
	for _, c := range []string{"replay", "explain", "profiles", "ops", "merge", "minimize", "import"} {
		if code, out, _ := run(t, c, "--help"); code != 0 || !strings.Contains(out, "usage: mcheck "+c) {
			t.Errorf("%s --help: %d %q", c, code, out)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512M": 512 << 20, "2G": 2 << 30, "128MiB": 128 << 20, "1GB": 1 << 30,
		"4096": 4096, "64k": 64 << 10, "1T": 1 << 40} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1G", "1.5G", "12X", "99999999999999G"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestProfilesOpsExplain(t *testing.T) {
	code, out, _ := run(t, "profiles")
	if code != 0 {
		t.Fatalf("profiles: exit %d", code)
	}
	for _, n := range mcheck.ProfileNames() {
		if !strings.Contains(out, n) {
			t.Errorf("profiles: %s missing", n)
		}
	}
	code, out, _ = run(t, "ops", "--profile", "tiny-x86")
	if code != 0 {
		t.Fatalf("ops: exit %d", code)
	}
	for _, s := range mcheck.Specs {
		if !strings.Contains(out, s.Name) || !strings.Contains(out, s.Help) {
			t.Errorf("ops: %s missing", s.Name)
		}
	}
	p, _ := mcheck.LookupProfile("tiny-x86")
	n := len(checker.Alphabet(&p, nil))
	if !strings.Contains(out, "in all") || !strings.Contains(out, itoa(n)+" in all") {
		t.Errorf("ops: count %d not printed:\n%s", n, out)
	}
	code, out, _ = run(t, "explain", "--profile", "x86_64-4k", "--block-size", "1G")
	if code != 0 || !strings.Contains(out, "memmap of one block") || !strings.Contains(out, "4096 pages") {
		t.Errorf("explain: %d\n%s", code, out)
	}
	code, out, _ = run(t, "explain", "--profile", "tiny-ppc")
	if code != 0 || !strings.Contains(out, "force waste") || !strings.Contains(out, "not supported") {
		t.Errorf("explain tiny-ppc: %d\n%s", code, out)
	}
	code, out, _ = run(t, "explain", "--profile", "x86_64-4k", "--kernel", "6.1")
	if code != 0 || !strings.Contains(out, "not available") {
		t.Errorf("explain 6.1: %d\n%s", code, out)
	}
}

func itoa(n int) string { return comma(int64(n)) }

func TestMergeCLI(t *testing.T) {
	dir := t.TempDir()
	mk := func(i, n int, f *checker.FindingSummary) string {
		s := &checker.Summary{Tool: "mcheck", Version: checker.SummaryVersion, Mode: "search",
			Config: checker.SummaryConfig{Profile: "tiny-x86", Depth: 4}, Complete: true,
			Shard:          &checker.ShardSummary{Index: i, Count: n, PrefixDepth: 2, PrefixStates: 10},
			DistinctStates: 30, Transitions: 100, DepthReached: 4, Result: checker.ResultPass, Finding: f}
		var b bytes.Buffer
		s.WriteJSON(&b)
		return writeFile(t, dir, "s"+itoa(i)+".json", b.String())
	}
	a, b := mk(0, 2, nil), mk(1, 2, nil)
	code, out, errs := run(t, "merge", a, b)
	if code != 0 || !strings.Contains(out, "50") {
		t.Fatalf("merge: %d %q %q", code, out, errs)
	}
	code, out, _ = run(t, "merge", "--json", a, b)
	var m checker.Summary
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.DistinctStates != 50 || m.Transitions != 200 {
		t.Fatalf("merge --json: %d %q", code, out)
	}
	f := &checker.FindingSummary{ID: "divergence", Expect: "divergence", Length: 3, Path: []string{"a", "b", "c"}, Text: "x"}
	c := mk(1, 2, f)
	if code, out, _ := run(t, "merge", a, c); code != 1 || !strings.Contains(out, "DIVERGENCE") {
		t.Fatalf("merge finding: %d %q", code, out)
	}
	if code, _, _ := run(t, "merge", a); code != 2 {
		t.Fatalf("merge missing shard: %d", code)
	}
}

// skipWithoutImpl skips while model/impl have not landed.
func skipWithoutImpl(t *testing.T) {
	t.Helper()
	p, _ := mcheck.LookupProfile("tiny-x86")
	if _, err := checker.NewPair(p, nil); err != nil {
		t.Skipf("model/impl not available: %v", err)
	}
}

func TestPlantedFaultFoundAndReplayed(t *testing.T) {
	skipWithoutImpl(t)
	dir := t.TempDir()
	code, out, errs := run(t, "--depth", "3", "--inject", "online-skips-vmemmap-present", "--out", dir, "--workers", "2")
	if code != ExitFinding {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "shortest counterexample, 2 ops") {
		t.Errorf("not a 2-op counterexample:\n%s", out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tiny-x86-*.trace"))
	if len(files) != 1 {
		t.Fatalf("trace files: %v", files)
	}
	tr, err := mcheck.ReadTraceFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Ops) != 2 || tr.Ops[0].Kind != mcheck.OpAddMemory || !tr.Ops[0].MMOM || tr.Ops[1].Kind != mcheck.OpOnline {
		t.Errorf("trace ops %v", tr.Ops)
	}
	if len(tr.Inject) != 1 || tr.Inject[0] != "online-skips-vmemmap-present" || tr.Expect == "" ||
		tr.Overrides.Kernel == nil || tr.Overrides.Mode == nil || tr.Overrides.Blocks == nil {
		t.Errorf("trace header: %+v", tr)
	}
	// The trace replays (from another directory) to the same finding.
	code, rout, rerr := run(t, "replay", files[0])
	if code != ExitFinding {
		t.Fatalf("replay exit %d\n%s\n%s", code, rout, rerr)
	}
	if !strings.Contains(rout, ": matches") || strings.Contains(rout, "DOES NOT MATCH") {
		t.Errorf("replay does not confirm the expectation:\n%s", rout)
	}
	findingLine := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "finding: ") {
			findingLine = l
		}
	}
	if findingLine == "" || !strings.Contains(rout, findingLine) {
		t.Errorf("replay finding differs from the search's %q:\n%s", findingLine, rout)
	}
	if !strings.Contains(rout, "before=") || !strings.Contains(rout, "after=") {
		t.Errorf("replay shows no snapshot changes:\n%s", rout)
	}

	// JSON: the same finding, machine-readable.
	code, jout, _ := run(t, "--depth", "3", "--inject", "online-skips-vmemmap-present", "--out", dir, "--json", "--workers", "1")
	var s checker.Summary
	if code != ExitFinding || json.Unmarshal([]byte(jout), &s) != nil {
		t.Fatalf("--json: exit %d\n%s", code, jout)
	}
	if s.Finding == nil || s.Finding.Length != 2 || s.Finding.TraceFile != files[0] || s.Result == checker.ResultPass {
		t.Errorf("--json finding: %+v", s.Finding)
	}

	// minimize and import are wired.
	code, mout, merr := run(t, "minimize", "--out", dir, files[0])
	if code != ExitFinding || !strings.Contains(mout, "# expect: "+tr.Expect) || !strings.Contains(mout, "online block=1") {
		t.Errorf("minimize: exit %d\n%s\n%s", code, mout, merr)
	}
	code, iout, ierr := run(t, "import", files[0])
	if code != ExitOK || !strings.HasPrefix(iout, mcheck.TraceMagic) {
		t.Errorf("import: exit %d\n%s\n%s", code, iout, ierr)
	}

	// A trace whose expectation is wrong says so.
	wrong := strings.Replace(tr.String(), "# expect: "+tr.Expect, "# expect: pass", 1)
	wf := writeFile(t, dir, "wrong.trace", wrong)
	code, rout, _ = run(t, "replay", "--quiet", wf)
	if code != ExitFinding || !strings.Contains(rout, "DOES NOT MATCH") {
		t.Errorf("replay of a mislabelled trace: exit %d\n%s", code, rout)
	}
}

func TestCleanRunAndBounds(t *testing.T) {
	skipWithoutImpl(t)
	dir := t.TempDir()
	code, out, errs := run(t, "--depth", "2", "--out", dir)
	if code != ExitOK || !strings.Contains(out, "no invariant violation or divergence within depth 2") ||
		!strings.Contains(out, "bytes/state") || !strings.Contains(out, "collision prob.") {
		t.Fatalf("clean run: exit %d\n%s\n%s", code, out, errs)
	}
	if errs != "" {
		t.Errorf("stderr not silent when not a terminal: %q", errs)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("out dir: %v", err)
	}
	code, out, _ = run(t, "--depth", "6", "--max-states", "20", "--out", dir)
	if code != ExitOK || !strings.Contains(out, "bound not completed") || !strings.Contains(out, "PARTIAL") {
		t.Fatalf("--max-states: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "--depth", "6", "--max-memory", "1K", "--out", dir)
	if code != ExitOK || !strings.Contains(out, "bound not completed") || !strings.Contains(out, "max-memory") {
		t.Fatalf("--max-memory: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "--depth", "2", "--quiet", "--out", dir)
	if code != ExitOK || strings.Count(out, "\n") != 1 {
		t.Fatalf("--quiet: exit %d\n%q", code, out)
	}
	code, out, _ = run(t, "--simulate", "--steps", "10", "--walks", "20", "--seed", "7", "--json", "--out", dir)
	var s checker.Summary
	if code != ExitOK || json.Unmarshal([]byte(out), &s) != nil || s.Mode != "simulate" || s.Transitions != 200 {
		t.Fatalf("--simulate: exit %d\n%s", code, out)
	}
}

func TestSimulateFindsPlantedFault(t *testing.T) {
	skipWithoutImpl(t)
	dir := t.TempDir()
	args := []string{"--simulate", "--steps", "20", "--walks", "200", "--seed", "3", "--inject", "online-skips-vmemmap-present", "--out", dir, "--json"}
	code1, out1, _ := run(t, append(args, "--workers", "1")...)
	code2, out2, _ := run(t, append(args, "--workers", "2")...)
	var a, b checker.Summary
	if code1 != ExitFinding || code2 != ExitFinding || json.Unmarshal([]byte(out1), &a) != nil || json.Unmarshal([]byte(out2), &b) != nil {
		t.Fatalf("exit %d/%d\n%s", code1, code2, out1)
	}
	if a.Finding.TraceFile != b.Finding.TraceFile || *a.Walk != *b.Walk || a.DistinctStates != b.DistinctStates {
		t.Errorf("simulation depends on --workers: %s walk %d vs %s walk %d", a.Finding.TraceFile, *a.Walk, b.Finding.TraceFile, *b.Walk)
	}
	if code, rout, _ := run(t, "replay", "--quiet", a.Finding.TraceFile); code != ExitFinding || !strings.Contains(rout, ": matches") {
		t.Errorf("replay: %d\n%s", code, rout)
	}
}

func TestShardsMergeCLI(t *testing.T) {
	skipWithoutImpl(t)
	dir := t.TempDir()
	var files []string
	for i := 0; i < 2; i++ {
		code, out, errs := run(t, "--depth", "4", "--shard", fmt.Sprintf("%d/2", i), "--json", "--out", dir)
		if code != ExitOK {
			t.Fatalf("shard %d: exit %d %s", i, code, errs)
		}
		files = append(files, writeFile(t, dir, fmt.Sprintf("s%d.json", i), out))
	}
	code, out, errs := run(t, append([]string{"merge"}, files...)...)
	if code != ExitOK || !strings.Contains(out, "no invariant violation") {
		t.Fatalf("merge: %d\n%s\n%s", code, out, errs)
	}
}

func TestInterrupt(t *testing.T) {
	skipWithoutImpl(t)
	ready := make(chan struct{})
	signalHook = func() { close(ready) }
	defer func() { signalHook = nil }()
	type res struct {
		code      int
		out, errs string
	}
	done := make(chan res)
	go func() {
		var out, errb bytes.Buffer
		code := Main([]string{"--depth", "30", "--ops", "all", "--out", t.TempDir()}, &out, &errb)
		done <- res{code, out.String(), errb.String()}
	}()
	<-ready
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case r := <-done:
		if r.code != ExitInterrupted || !strings.Contains(r.out, "PARTIAL: interrupted") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.errs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("search did not stop after SIGINT")
	}
}

func TestInternalErrorReport(t *testing.T) {
	for _, debug := range []string{"", "1"} {
		t.Setenv("MCHECK_DEBUG", debug)
		var errb bytes.Buffer
		e := &env{stdout: &bytes.Buffer{}, stderr: &errb}
		code := e.fail(&checker.InternalError{Value: "index out of range", Stack: []byte("goroutine 7 [running]:\n...\n"), Where: "worker"})
		if code != ExitInternal {
			t.Fatalf("exit %d", code)
		}
		s := errb.String()
		if !strings.HasPrefix(s, "mcheck: internal error: worker: panic: index out of range; please report with the command line\n") {
			t.Errorf("message %q", s)
		}
		if hasStack := strings.Contains(s, "goroutine 7"); hasStack != (debug == "1") {
			t.Errorf("MCHECK_DEBUG=%q: stack printed = %v", debug, hasStack)
		}
	}
	// A panic in the command itself is caught by Main.
	commands = append(commands, command{name: "zz-panic", run: func(*env, []string) (int, error) { panic("boom") }})
	defer func() { commands = commands[:len(commands)-1] }()
	t.Setenv("MCHECK_DEBUG", "")
	code, _, errs := run(t, "zz-panic")
	if code != ExitInternal || !strings.Contains(errs, "internal error: panic: boom") || strings.Contains(errs, "goroutine") {
		t.Errorf("exit %d %q", code, errs)
	}
}

func TestProgressPrinter(t *testing.T) {
	var b bytes.Buffer
	pp := &progressPrinter{w: &b}
	pp.print(checker.Progress{Elapsed: time.Second, Distinct: 5})
	if b.Len() != 0 {
		t.Fatalf("progress before 2s: %q", b.String())
	}
	pp.print(checker.Progress{Elapsed: 3 * time.Second, Depth: 4, Distinct: 3000, Frontier: 700, Transitions: 40000})
	want := "mcheck: depth 5  distinct states 3,000  (1,000 states/s)  frontier 700  transitions 40,000  elapsed 3s\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	tty := &progressPrinter{w: &b, tty: true}
	tty.print(checker.Progress{Elapsed: 3 * time.Second})
	tty.done()
	if !strings.HasPrefix(b.String(), "\r\x1b[K") || !strings.HasSuffix(b.String(), "\r\x1b[K") || strings.Contains(b.String(), "\n") {
		t.Fatalf("tty progress %q", b.String())
	}
}
