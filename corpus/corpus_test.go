package corpus

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

// TestCorpus replays every trace under corpus/ (except corpus/kernel/) and checks the outcome its
// header expects: pass -> no finding; violation INV-n -> a finding with that id; divergence -> a
// divergence finding.
func TestCorpus(t *testing.T) {
	files, err := Files(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no traces found")
	}
	for _, path := range files {
		t.Run(filepath.ToSlash(path), func(t *testing.T) {
			tr, err := mcheck.ReadTraceFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Expect == "" {
				t.Errorf("%s: no `# expect:` header", path)
			}
			if _, err := Verify(tr); err != nil {
				t.Errorf("%s: %v\n%s", path, err, tr)
			}
		})
	}
}

// TestSeedsCoverAlphabet: the seed traces use every op kind on tiny-x86 and on tiny-ppc.
func TestSeedsCoverAlphabet(t *testing.T) {
	ts, _, err := Load("seed")
	if err != nil {
		t.Fatal(err)
	}
	for _, prof := range []string{"tiny-x86", "tiny-ppc"} {
		seen := map[mcheck.OpKind]bool{}
		for _, tr := range ts {
			if tr.Profile == prof {
				for _, op := range tr.Ops {
					seen[op.Kind] = true
				}
			}
		}
		for k := mcheck.OpKind(0); k < mcheck.NrOpKinds; k++ {
			if !seen[k] {
				t.Errorf("%s: no seed trace uses %s", prof, k)
			}
		}
	}
}

// TestBugsNamePlantedFaults: every trace under bugs/ plants a fault and expects a failure.
func TestBugsNamePlantedFaults(t *testing.T) {
	ts, files, err := Load("bugs")
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range ts {
		if len(tr.Inject) == 0 {
			t.Errorf("%s: no `# inject:` fault", files[i])
		}
		if tr.Expect != "divergence" && !strings.HasPrefix(tr.Expect, "violation ") {
			t.Errorf("%s: expect %q, want a violation or divergence", files[i], tr.Expect)
		}
		// Without the fault the same ops pass: the trace documents the fault, nothing else.
		clean := *tr
		clean.Inject = nil
		if f, err := checker.RunTrace(&clean); err != nil || f != nil {
			t.Errorf("%s: without inject the trace must pass, got %v (err %v)", files[i], f, err)
		}
	}
}

func TestFilesSkipsKernel(t *testing.T) {
	files, err := Files(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.ToSlash(f), "kernel/") {
			t.Errorf("Files returned %s from corpus/kernel/", f)
		}
	}
}
