package fuzz

import (
	"fmt"
	"os"
	"strings"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

// InjectEnv names the environment variable every driver reads for impl fault switches to plant
// (comma-separated, e.g. MCHECK_FUZZ_INJECT=online-skips-vmemmap-present).
const InjectEnv = "MCHECK_FUZZ_INJECT"

// InjectFromEnv returns the fault switches named by $MCHECK_FUZZ_INJECT.
func InjectFromEnv() []string {
	var out []string
	for _, s := range strings.Split(os.Getenv(InjectEnv), ",") {
		if s = strings.TrimSpace(s); s != "" && s != "-" {
			out = append(out, s)
		}
	}
	return out
}

// Session is one lockstep run being fed ops one at a time: the single apply/check path of every
// driver. It keeps the ops applied so far and stops at the first finding.
type Session struct {
	Profile mcheck.Profile
	Inject  []string
	Ops     []mcheck.Op
	Finding *checker.Finding // the first finding, nil while model and impl agree
	pair    *checker.Pair
}

// NewSession builds the pair and checks its initial state (a finding there is kept in Finding).
func NewSession(p mcheck.Profile, inject []string) (*Session, error) {
	q, err := checker.NewPair(p, inject)
	if err != nil {
		return nil, err
	}
	s := &Session{Profile: p, Inject: append([]string(nil), inject...), pair: q}
	s.Finding = q.CheckInitial()
	return s, nil
}

// Apply runs op on both machines (checker.Pair.Step) and returns the session's finding. After a
// finding the pair is no longer stepped: further ops are ignored.
func (s *Session) Apply(op mcheck.Op) *checker.Finding {
	if s.Finding != nil {
		return s.Finding
	}
	s.Ops = append(s.Ops, op)
	s.Finding = s.pair.Step(len(s.Ops)-1, op)
	return s.Finding
}

// Trace is the replayable trace of the ops applied so far, with every profile knob pinned and,
// when there is a finding, its expected outcome.
func (s *Session) Trace() *mcheck.Trace {
	return MakeTrace(s.Profile, s.Inject, s.Ops, s.Finding)
}

// MakeTrace builds a trace for ops on p (a named profile plus overrides) with faults inject; f,
// if not nil, sets the expected outcome.
func MakeTrace(p mcheck.Profile, inject []string, ops []mcheck.Op, f *checker.Finding) *mcheck.Trace {
	t := &mcheck.Trace{
		Profile:   p.Name,
		Overrides: mcheck.FullOverrides(p),
		Inject:    append([]string(nil), inject...),
		Ops:       append([]mcheck.Op(nil), ops...),
	}
	if f != nil {
		t.Expect = f.Expect()
	}
	return t
}

// Run applies ops in order and returns the first finding and the trace up to it.
func Run(p mcheck.Profile, inject []string, ops []mcheck.Op) (*checker.Finding, *mcheck.Trace, error) {
	s, err := NewSession(p, inject)
	if err != nil {
		return nil, nil, err
	}
	for _, op := range ops {
		if s.Apply(op) != nil {
			break
		}
	}
	return s.Finding, s.Trace(), nil
}

// RunBytes is Decode followed by Run: the body of the byte-driven fuzzers.
func RunBytes(data []byte, inject []string) (*checker.Finding, *mcheck.Trace, error) {
	p, ops := Decode(data)
	return Run(p, inject, ops)
}

// Markers around the trace in every driver's failure message; ImportFile looks for them.
const (
	traceBegin = "--- mcheck trace ---"
	traceEnd   = "--- end mcheck trace ---"
)

// Report is the failure message of every driver: the finding, then the trace between markers.
func Report(f *checker.Finding, t *mcheck.Trace) string {
	var b strings.Builder
	if f != nil {
		fmt.Fprintf(&b, "mcheck finding: %s\n", f)
	}
	fmt.Fprintf(&b, "%s\n%s%s\n", traceBegin, t, traceEnd)
	fmt.Fprintf(&b, "minimize and file it: go run ./fuzz/cmd/mcheck-import -minimize -o corpus/found <the input or this trace> (fuzz/README.md)")
	return b.String()
}
