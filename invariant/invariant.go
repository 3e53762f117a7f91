// Package invariant is the catalogue INV-1..INV-25 of kernel-semantics.md §6, checked over
// snapshots: each rule is a function whose doc comment states it and the kernel code it protects.
package invariant

import (
	"fmt"

	"github.com/mcheck/mcheck"
)

// Violation is one broken rule.
type Violation struct {
	ID  string // "INV-8"
	Msg string
}

func (v Violation) String() string { return v.ID + ": " + v.Msg }

// Info describes one invariant of the catalogue.
type Info struct {
	ID      string
	Title   string
	Checked bool         // false: needs a concurrent harness, listed as not yet checked
	Why     string       // when not checked
	check   func(c *ctx) // the part that depends on the state alone
	trans   func(c *ctx) // the part that depends on the transition (prev, op, result, next)
}

// ctx carries one check: the profile, the states before/after and the op (nil for the initial state).
type ctx struct {
	p    *mcheck.Profile
	prev *mcheck.Snapshot
	op   *mcheck.Op
	res  mcheck.Result
	next *mcheck.Snapshot
	id   string
	out  []Violation
	live map[int]mcheck.AltmapSnap // cache of liveAltmaps(p, next)
}

func (c *ctx) fail(format string, a ...any) {
	c.out = append(c.out, Violation{c.id, fmt.Sprintf(format, a...)})
}

// Check runs every checked invariant on the transition prev --op/res--> next. For the initial
// state prev and op are nil.
func Check(p *mcheck.Profile, prev *mcheck.Snapshot, op *mcheck.Op, res mcheck.Result, next *mcheck.Snapshot) []Violation {
	return run(p, prev, op, res, next, true)
}

// CheckTransition runs only the transition parts: enough when next is a state whose own
// invariants were already checked (a search reaching a visited state again).
func CheckTransition(p *mcheck.Profile, prev *mcheck.Snapshot, op *mcheck.Op, res mcheck.Result, next *mcheck.Snapshot) []Violation {
	return run(p, prev, op, res, next, false)
}

func run(p *mcheck.Profile, prev *mcheck.Snapshot, op *mcheck.Op, res mcheck.Result, next *mcheck.Snapshot, state bool) []Violation {
	c := &ctx{p: p, prev: prev, op: op, res: res, next: next}
	for _, inv := range Catalogue {
		c.id = inv.ID
		if state && inv.check != nil {
			inv.check(c)
		}
		if inv.trans != nil {
			inv.trans(c)
		}
	}
	return c.out
}

// Catalogue lists every invariant in order; filled in by catalogue.go.
var Catalogue []Info
