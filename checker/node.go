package checker

import (
	"fmt"
	"runtime/debug"

	"github.com/mcheck/mcheck"
)

// Node is one state of the search: normally a Pair (model and impl in lockstep), in tests a
// double. Step mutates the node and checks the transition; Clone is a deep copy.
type Node interface {
	Clone() Node
	Fingerprint() uint64
	Step(i int, op mcheck.Op) *Finding
}

// Root builds the initial node and checks the initial state (a non-nil Finding means the initial
// state is already wrong). An error means the configuration cannot be run (bad input).
type Root func() (Node, *Finding, error)

type pairNode struct{ q *Pair }

func (n pairNode) Clone() Node                       { return pairNode{n.q.Clone()} }
func (n pairNode) Fingerprint() uint64               { return n.q.Fingerprint() }
func (n pairNode) Step(i int, op mcheck.Op) *Finding { return n.q.Step(i, op) }
func (n pairNode) StepSeen(i int, op mcheck.Op, seen func(uint64) bool) (*Finding, uint64, bool) {
	return n.q.StepSeen(i, op, seen)
}

// seenStepper is a Node that can skip the state checks of a state already reached.
type seenStepper interface {
	StepSeen(i int, op mcheck.Op, seen func(uint64) bool) (*Finding, uint64, bool)
}

// PairRoot is the Root of the real search: NewPair(p, inject) and CheckInitial.
func PairRoot(p mcheck.Profile, inject []string) Root {
	return func() (Node, *Finding, error) {
		q, err := NewPair(p, inject)
		if err != nil {
			return nil, nil, err
		}
		return pairNode{q}, q.CheckInitial(), nil
	}
}

type stepOutcome struct {
	Model, Impl mcheck.Result
	Finding     *Finding
}

// stepResults is Pair.Step that also returns both results (for printing traces).
func (q *Pair) stepResults(i int, op mcheck.Op) stepOutcome {
	prev, next, mr, ir := q.apply(op)
	return stepOutcome{mr, ir, q.compare(i, op, &op, mr, ir, prev, next)}
}

// InternalError is a panic inside the checker or a machine, recovered so that the command can
// report it instead of crashing.
type InternalError struct {
	Value any
	Stack []byte
	Where string
}

func (e *InternalError) Error() string {
	if e.Where != "" {
		return fmt.Sprintf("%s: panic: %v", e.Where, e.Value)
	}
	return fmt.Sprintf("panic: %v", e.Value)
}

// catch converts a panic into *InternalError stored in *err.
func catch(where string, err *error) {
	if r := recover(); r != nil {
		*err = &InternalError{Value: r, Stack: debug.Stack(), Where: where}
	}
}
