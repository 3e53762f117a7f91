package fuzz

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
	"pgregory.net/rapid"
)

// TestRapidLockstep is the rapid property without planted faults: model and impl must agree on
// every generated sequence. Replay a failure with the command rapid prints:
//
//	go test ./fuzz/ -run=TestRapidLockstep -rapid.failfile=testdata/rapid/TestRapidLockstep/...fail
//	go test ./fuzz/ -run=TestRapidLockstep -rapid.seed=N
//
// More checks / longer sequences: -rapid.checks=10000 -rapid.steps=60.
// With a planted fault: MCHECK_FUZZ_INJECT=online-skips-vmemmap-present go test ./fuzz/ -run=TestRapidLockstep
//
// The seed is fixed (1) so CI is deterministic; -rapid.seed=N picks another, and
// MCHECK_RAPID_RANDOM=1 lets rapid choose a random one per run.
func TestRapidLockstep(t *testing.T) {
	fixRapidSeed(t)
	rapid.Check(t, RapidProperty(InjectFromEnv()))
}

// fixRapidSeed sets -rapid.seed=1 for the test unless a seed was given or MCHECK_RAPID_RANDOM is set.
func fixRapidSeed(t *testing.T) {
	fl := flag.Lookup("rapid.seed")
	if fl == nil || fl.Value.String() != "0" || os.Getenv("MCHECK_RAPID_RANDOM") != "" {
		return
	}
	if err := fl.Value.Set("1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fl.Value.Set("0") })
}

// checkFails runs a property on a rapid.TB that records instead of failing, in a fresh temporary
// working directory (rapid writes its fail file to testdata/rapid/ there), with -rapid.seed=seed,
// and returns the fail file rapid wrote and the output.
func checkFails(t *testing.T, seed int, prop func(*rapid.T)) (failfile, output string, failed bool) {
	t.Helper()
	fl := flag.Lookup("rapid.seed")
	old := fl.Value.String()
	if err := fl.Value.Set(strconv.Itoa(seed)); err != nil {
		t.Fatal(err)
	}
	defer fl.Value.Set(old)
	dir := t.TempDir()
	t.Chdir(dir)
	tb := &replayTB{}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(replayStop); !ok {
					panic(r)
				}
			}
		}()
		rapid.Check(tb, prop)
	}()
	files, _ := filepath.Glob(filepath.Join(dir, "testdata", "rapid", "*", "*.fail"))
	if len(files) == 1 {
		failfile = files[0]
	}
	return failfile, tb.log.String(), tb.failed
}

// TestRapidFindsPlantedFault: with online-skips-vmemmap-present planted, the rapid property fails
// with a trace that fails with the fault and passes without it (a failure that also happens
// without the fault is a real bug, reported by TestRapidLockstep: it is logged and the next seed
// tried); its fail file imports to that trace, also when the logged trace is stripped from it;
// and the minimizer shrinks it to at most 4 ops (the shortest counterexample has 2).
func TestRapidFindsPlantedFault(t *testing.T) {
	const fault = "online-skips-vmemmap-present"
	start := time.Now()
	var failfile string
	var tr *mcheck.Trace
	for seed := 1; tr == nil; seed++ {
		if seed > 20 || time.Since(start) > 30*time.Second {
			t.Fatalf("rapid did not find %s in %d seeds (%v)", fault, seed-1, time.Since(start).Round(time.Millisecond))
		}
		ff, out, failed := checkFails(t, seed, RapidProperty([]string{fault}))
		if !failed {
			t.Logf("seed %d: no failure", seed)
			continue
		}
		if ff == "" {
			t.Fatalf("no fail file written:\n%s", out)
		}
		got, err := ImportFile(ff)
		if err != nil {
			raw, _ := os.ReadFile(ff)
			t.Fatalf("ImportFile: %v\n%s", err, raw)
		}
		if strings.Join(got.Inject, ",") != fault {
			t.Fatalf("imported trace injects %v, want %s", got.Inject, fault)
		}
		if f, err := checker.RunTrace(got); err != nil || f == nil {
			t.Fatalf("imported trace does not fail: %v %v\n%s", f, err, got)
		}
		clean := *got
		clean.Inject = nil
		if g, err := checker.RunTrace(&clean); err != nil || g != nil {
			t.Logf("seed %d: found a failure that is not the planted fault (a real one, see TestRapidLockstep):\n%s", seed, got)
			continue
		}
		failfile, tr = ff, got
	}
	t.Logf("rapid found and shrank %s in %v", fault, time.Since(start).Round(time.Millisecond))
	min, _, err := checker.Minimize(tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(min.Ops) > 4 {
		t.Errorf("minimized to %d ops, want <= 4:\n%s", len(min.Ops), min)
	}
	t.Logf("rapid's trace (%d ops) minimized:\n%s", len(tr.Ops), min)

	// The same fail file replays through the property when its logged trace is gone.
	raw, _ := os.ReadFile(failfile)
	var kept []string
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "#") {
			kept = append(kept, l)
		}
	}
	bare := filepath.Join(t.TempDir(), "bare.fail")
	if err := os.WriteFile(bare, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	replayed, err := ImportFileInject(bare, []string{fault})
	if err != nil {
		t.Fatalf("replaying the bare fail file: %v", err)
	}
	if replayed.String() != tr.String() {
		t.Errorf("replayed fail file gives\n%s\nthe logged trace is\n%s", replayed, tr)
	}
}
