// Package checker drives the reference model and the implementation in lockstep and searches
// their state space: the runner, the bounded exhaustive search, simulation and minimization.
package checker

import (
	"fmt"
	"strings"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/impl"
	"github.com/mcheck/mcheck/invariant"
	"github.com/mcheck/mcheck/model"
)

// Finding kinds.
const (
	KindResult    = "result-divergence"   // model and impl returned different results
	KindSnapshot  = "snapshot-divergence" // observable states differ
	KindInvariant = "invariant"           // a catalogue invariant broke (on the model's state)
	KindImplCheck = "impl-consistency"    // the impl's own bookkeeping is inconsistent
)

// Finding is the first failure of a run: where, what, and the field-level details.
type Finding struct {
	Step      int // index of the op in the sequence; -1 = the initial state
	Op        mcheck.Op
	Kind      string
	Invariant string // for KindInvariant: "INV-n"
	Model     mcheck.Result
	Impl      mcheck.Result
	Details   []string
}

// ID names the failure class: the invariant id, or the kind for divergences. Minimization keeps it.
func (f *Finding) ID() string {
	if f.Kind == KindInvariant {
		return f.Invariant
	}
	if f.Kind == KindImplCheck {
		return KindImplCheck
	}
	return "divergence"
}

// Expect is the trace header form of the finding ("violation INV-8" or "divergence").
func (f *Finding) Expect() string {
	if f.Kind == KindInvariant || f.Kind == KindImplCheck {
		return "violation " + f.ID()
	}
	return "divergence"
}

func (f *Finding) String() string {
	var b strings.Builder
	if f.Step < 0 {
		fmt.Fprintf(&b, "initial state: %s", f.Kind)
	} else {
		fmt.Fprintf(&b, "step %d: %s: %s", f.Step+1, f.Op, f.Kind)
	}
	if f.Invariant != "" {
		fmt.Fprintf(&b, " %s", f.Invariant)
	}
	if f.Step >= 0 {
		fmt.Fprintf(&b, " (model %s, impl %s)", f.Model, f.Impl)
	}
	for _, d := range f.Details {
		fmt.Fprintf(&b, "\n    %s", d)
	}
	return b.String()
}

// Pair is a model and an implementation that have seen the same ops.
type Pair struct {
	Profile *mcheck.Profile
	Model   mcheck.Machine
	Impl    mcheck.Machine
	snap    *mcheck.Snapshot // the model's current snapshot
}

// NewPair builds both machines in their initial state; inject names impl fault switches.
func NewPair(p mcheck.Profile, inject []string) (*Pair, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	im, err := impl.New(p, inject...)
	if err != nil {
		return nil, err
	}
	pp := &p
	return &Pair{Profile: pp, Model: model.New(p), Impl: im}, nil
}

// Clone copies both machines.
func (q *Pair) Clone() *Pair {
	return &Pair{Profile: q.Profile, Model: q.Model.Clone(), Impl: q.Impl.Clone(), snap: q.snap}
}

// Fingerprint identifies the pair's joint state.
func (q *Pair) Fingerprint() uint64 {
	a, b := q.Model.Fingerprint(), q.Impl.Fingerprint()
	return a ^ (b*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019 + (a << 6) + (a >> 2))
}

// ModelSnapshot is the model's current snapshot (cached).
func (q *Pair) ModelSnapshot() *mcheck.Snapshot {
	if q.snap == nil {
		q.snap = q.Model.Snapshot()
	}
	return q.snap
}

// CheckInitial checks the initial state: snapshots agree and invariants hold.
func (q *Pair) CheckInitial() *Finding {
	ms := q.ModelSnapshot()
	return q.compare(-1, mcheck.Op{}, nil, mcheck.Result{}, mcheck.Result{}, nil, ms)
}

// Step applies op to both machines and checks results, snapshots and invariants.
func (q *Pair) Step(i int, op mcheck.Op) *Finding {
	prev, next, mr, ir := q.apply(op)
	return q.compare(i, op, &op, mr, ir, prev, next)
}

// apply runs op on both machines: their results, and the model's snapshots before and after.
func (q *Pair) apply(op mcheck.Op) (prev, next *mcheck.Snapshot, mr, ir mcheck.Result) {
	prev = q.ModelSnapshot()
	mr = q.Model.Apply(op)
	ir = q.Impl.Apply(op)
	q.snap = nil
	return prev, q.ModelSnapshot(), mr, ir
}

// StepSeen is Step for a search. When the pair reaches a state that seen reports as already
// reached (and so already checked: snapshots equal, state invariants, impl consistency), only the
// results and the transition invariants are compared. It returns the finding, the pair's
// fingerprint and whether the state was new.
func (q *Pair) StepSeen(i int, op mcheck.Op, seen func(uint64) bool) (*Finding, uint64, bool) {
	prev, next, mr, ir := q.apply(op)
	fp := q.Fingerprint()
	if !seen(fp) {
		return q.compare(i, op, &op, mr, ir, prev, next), fp, true
	}
	if f := resultFinding(i, op, mr, ir); f != nil {
		return f, fp, false
	}
	return invariantFinding(i, op, mr, ir, invariant.CheckTransition(q.Profile, prev, &op, mr, next)), fp, false
}

func resultFinding(i int, op mcheck.Op, mr, ir mcheck.Result) *Finding {
	if mr == ir {
		return nil
	}
	return &Finding{Step: i, Op: op, Kind: KindResult, Model: mr, Impl: ir,
		Details: []string{fmt.Sprintf("result: model=%s impl=%s", mr, ir)}}
}

func invariantFinding(i int, op mcheck.Op, mr, ir mcheck.Result, v []invariant.Violation) *Finding {
	if len(v) == 0 {
		return nil
	}
	out := &Finding{Step: i, Op: op, Kind: KindInvariant, Invariant: v[0].ID, Model: mr, Impl: ir}
	for _, x := range v {
		out.Details = append(out.Details, x.String())
	}
	return out
}

func (q *Pair) compare(i int, op mcheck.Op, opp *mcheck.Op, mr, ir mcheck.Result, prev, next *mcheck.Snapshot) *Finding {
	f := func(kind string, details ...string) *Finding {
		return &Finding{Step: i, Op: op, Kind: kind, Model: mr, Impl: ir, Details: details}
	}
	if rf := resultFinding(i, op, mr, ir); rf != nil {
		return rf
	}
	if is := q.Impl.Snapshot(); !next.Equal(is) {
		d := mcheck.Diff(next, is, "model", "impl", 20)
		if len(d) == 0 {
			d = []string{"snapshots differ in a field Diff does not print"}
		}
		return f(KindSnapshot, d...)
	}
	if out := invariantFinding(i, op, mr, ir, invariant.Check(q.Profile, prev, opp, mr, next)); out != nil {
		return out
	}
	if c := q.Impl.Check(); len(c) > 0 {
		return f(KindImplCheck, c...)
	}
	return nil
}

// Run replays ops on a fresh pair and returns the first finding (nil: all steps agree).
func Run(p mcheck.Profile, inject []string, ops []mcheck.Op) (*Finding, error) {
	q, err := NewPair(p, inject)
	if err != nil {
		return nil, err
	}
	if f := q.CheckInitial(); f != nil {
		return f, nil
	}
	for i, op := range ops {
		if f := q.Step(i, op); f != nil {
			return f, nil
		}
	}
	return nil, nil
}

// RunTrace replays a parsed trace.
func RunTrace(t *mcheck.Trace) (*Finding, error) {
	p, err := t.ResolveProfile()
	if err != nil {
		return nil, err
	}
	return Run(p, t.Inject, t.Ops)
}
