package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordings lists the shipped recordings: the prototype's (testdata/prototype, copied from
// ../shared/conformance) and the project recorder's (corpus/kernel).
func recordings(t *testing.T) []string {
	var files []string
	for _, dir := range []string{"testdata/prototype", "../corpus/kernel"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no recordings found")
	}
	return files
}

// TestReplayRecordings: the model predicts every recorded observation of every shipped trace.
func TestReplayRecordings(t *testing.T) {
	for _, f := range recordings(t) {
		f := f
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			r, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Replay(r)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s on %s: %d/%d observations matched (%d environment-explained); model ops: %s",
				rep.Scenario, rep.Kernel, rep.Matched, rep.Total, rep.Env, strings.Join(rep.Ops, "; "))
			for _, m := range rep.Mismatches {
				t.Errorf("%s", m)
			}
			if rep.Total == 0 {
				t.Fatal("no observations compared")
			}
		})
	}
}

// The comparison is not vacuous: a doctored recording is caught at the right step and field.
func TestReplayDetectsMismatch(t *testing.T) {
	r, err := Load("testdata/prototype/a_128M_movable_mmom1__k6.12.json")
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Steps[2].Observation.Zones {
		if r.Steps[2].Observation.Zones[i].Zone == "Movable" {
			r.Steps[2].Observation.Zones[i].Managed += 512 // as if memmap_on_memory were off
		}
	}
	rep, err := Replay(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Mismatches) == 0 || rep.Mismatches[0].Step != 2 || rep.Mismatches[0].Field != "Movable managed delta" {
		t.Fatalf("want a Movable managed mismatch at step 2, got %v", rep.Mismatches)
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
