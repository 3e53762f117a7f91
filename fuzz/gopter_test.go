package fuzz

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leanovate/gopter"
	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

func gopterParams(seed int64) *gopter.TestParameters {
	p := gopter.DefaultTestParametersWithSeed(seed)
	p.MinSuccessfulTests = 100
	p.MaxSize = 40 // ops per sequence
	return p
}

// TestGopterLockstep is the gopter commands property without planted faults (set
// MCHECK_FUZZ_INJECT to plant some). The seed is fixed so a failure reproduces; vary it with
// MCHECK_GOPTER_SEED (see README.md).
func TestGopterLockstep(t *testing.T) {
	props := gopter.NewProperties(gopterParams(gopterSeed()))
	props.Property("lockstep", GopterProperty(InjectFromEnv()))
	props.TestingRun(t)
}

// TestGopterFindsPlantedFault: with online-skips-vmemmap-present planted, the gopter property
// fails; its shrunk sequence fails with the fault and passes without it (a failure that also
// happens without the fault is a real bug, reported by TestGopterLockstep: it is logged and the
// next seed tried), and is at most 4 ops (the shortest counterexample has 2) after
// checker.Minimize.
func TestGopterFindsPlantedFault(t *testing.T) {
	const fault = "online-skips-vmemmap-present"
	start := time.Now()
	var tr *mcheck.Trace
	for seed := int64(1); tr == nil; seed++ {
		if seed > 20 || time.Since(start) > 30*time.Second {
			t.Fatalf("gopter did not find %s in %d seeds", fault, seed-1)
		}
		g := NewGopterCommands([]string{fault})
		res := g.Prop().Check(gopterParams(seed))
		if res.Passed() || g.LastTrace == nil {
			t.Logf("seed %d: %v", seed, res.Status)
			continue
		}
		got := g.LastTrace
		if strings.Join(got.Inject, ",") != fault {
			t.Fatalf("trace injects %v", got.Inject)
		}
		f, err := checker.RunTrace(got)
		if err != nil || f == nil || !checker.ExpectMatches(got.Expect, f) {
			t.Fatalf("shrunk trace does not fail as recorded: %v %v\n%s", f, err, got)
		}
		clean := *got
		clean.Inject = nil
		if g, err := checker.RunTrace(&clean); err != nil || g != nil {
			t.Logf("seed %d: found a failure that is not the planted fault (a real one, see TestGopterLockstep):\n%s", seed, got)
			continue
		}
		tr = got
	}
	t.Logf("gopter found and shrank %s in %v to %d ops:\n%s", fault, time.Since(start).Round(time.Millisecond), len(tr.Ops), tr)
	min, _, err := checker.Minimize(tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(min.Ops) > 4 {
		t.Errorf("minimized to %d ops, want <= 4:\n%s", len(min.Ops), min)
	}
}

func gopterSeed() int64 {
	if s := os.Getenv(GopterSeedEnv); s != "" {
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return n
		}
	}
	return 1
}
