package checker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/mcheck/mcheck"
)

// CounterexampleTrace is the replayable trace of a finding: the profile with every knob pinned
// (FullOverrides), the injected impl faults, the expected outcome and the op path.
func CounterexampleTrace(p mcheck.Profile, inject []string, f *Finding, path []mcheck.Op, comments ...string) *mcheck.Trace {
	t := &mcheck.Trace{
		Profile:   p.Name,
		Overrides: mcheck.FullOverrides(p),
		Inject:    append([]string(nil), inject...),
		Ops:       append([]mcheck.Op(nil), path...),
		Comments:  comments,
	}
	if f != nil {
		t.Expect = f.Expect()
	} else {
		t.Expect = "pass"
	}
	return t
}

// TraceFileName is <profile>-<finding id>-<8 hex digits of the trace's hash>.trace.
func TraceFileName(t *mcheck.Trace, f *Finding) string {
	id := "pass"
	if f != nil {
		id = f.ID()
	}
	id = strings.NewReplacer("/", "_", " ", "_").Replace(id)
	h := xxhash.Sum64String(t.String())
	return fmt.Sprintf("%s-%s-%08x.trace", t.Profile, id, uint32(h))
}

// WriteTrace writes t into dir (created if needed) under TraceFileName and returns the path.
func WriteTrace(dir string, t *mcheck.Trace, f *Finding) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, TraceFileName(t, f))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(t.String()), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, nil
}

// StepInfo is one replayed op: both results and the model snapshots around it.
type StepInfo struct {
	Index       int
	Op          mcheck.Op
	Model, Impl mcheck.Result
	Prev, Next  *mcheck.Snapshot // the model's snapshot before and after
}

// ReplaySteps replays ops on a fresh pair, calling each (if non-nil) after every step, and returns
// the first finding (stopping there; the finding's step is reported to each first).
func ReplaySteps(p mcheck.Profile, inject []string, ops []mcheck.Op, each func(StepInfo)) (f *Finding, err error) {
	defer catch("replay", &err)
	q, err := NewPair(p, inject)
	if err != nil {
		return nil, err
	}
	if f := q.CheckInitial(); f != nil {
		return f, nil
	}
	for i, op := range ops {
		prev := q.ModelSnapshot()
		r := q.stepResults(i, op)
		if each != nil {
			each(StepInfo{Index: i, Op: op, Model: r.Model, Impl: r.Impl, Prev: prev, Next: q.ModelSnapshot()})
		}
		if r.Finding != nil {
			return r.Finding, nil
		}
	}
	return nil, nil
}

// ExpectMatches reports whether finding f is the outcome a trace header's expect line names.
func ExpectMatches(expect string, f *Finding) bool {
	switch {
	case expect == "":
		return true
	case expect == "pass":
		return f == nil
	case f == nil:
		return false
	}
	return f.Expect() == expect
}
