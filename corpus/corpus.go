// Package corpus holds mcheck's trace corpus and the code that finds and replays it:
//
//	corpus/seed/   hand-written traces, each op kind on tiny-x86 and tiny-ppc (expect: pass)
//	corpus/bugs/   minimized counterexamples of the planted impl faults (inject: <fault>)
//	corpus/found/  minimized counterexamples found by the fuzzers and the search
//	corpus/kernel/ traces recorded against real kernels (owned by the kernel replay; not walked here)
//
// Every *.trace file outside corpus/kernel/ is replayed by `go test ./corpus/` and must end the
// way its `# expect:` header says. The fuzzers use the same files as seeds.
package corpus

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

// Dir is the corpus directory of this source tree ("" if the source is not available, e.g. in a
// fuzzing build that only ships binaries).
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Dir(file)
}

// Skipped lists the subdirectories Files does not walk.
var Skipped = []string{"kernel"}

// Files returns every *.trace under root, sorted, skipping root/kernel/ (and testdata dirs).
func Files(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root {
			rel, _ := filepath.Rel(root, path)
			for _, s := range Skipped {
				if rel == s {
					return filepath.SkipDir
				}
			}
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
		}
		if !d.IsDir() && strings.HasSuffix(path, ".trace") {
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// Load parses every trace under root (see Files).
func Load(root string) ([]*mcheck.Trace, []string, error) {
	files, err := Files(root)
	if err != nil {
		return nil, nil, err
	}
	var ts []*mcheck.Trace
	for _, f := range files {
		t, err := mcheck.ReadTraceFile(f)
		if err != nil {
			return nil, nil, err
		}
		ts = append(ts, t)
	}
	return ts, files, nil
}

// Verify replays t and checks the outcome against its expect header (a trace without one must
// pass). It returns the finding, if any.
func Verify(t *mcheck.Trace) (*checker.Finding, error) {
	f, err := checker.RunTrace(t)
	if err != nil {
		return nil, err
	}
	want := t.Expect
	if want == "" {
		want = "pass"
	}
	if !checker.ExpectMatches(want, f) {
		got := "pass"
		if f != nil {
			got = f.Expect() + "\n" + f.String()
		}
		return f, fmt.Errorf("expect: %s, got: %s", want, got)
	}
	return f, nil
}
