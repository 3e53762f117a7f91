// Package impl is the optimized, bitmap-based implementation of the memory-hotplug machine.
package impl

import (
	"fmt"

	"github.com/mcheck/mcheck"
)

// Machine is the bitmap implementation. (Placeholder until the implementation lands.)
type Machine struct{ p mcheck.Profile }

// New builds the initial state; faults names deliberate deviations to switch on.
func New(p mcheck.Profile, faults ...string) (*Machine, error) {
	if len(faults) > 0 {
		return nil, fmt.Errorf("unknown impl fault %q", faults[0])
	}
	return nil, fmt.Errorf("impl: not implemented yet")
}

func (m *Machine) Apply(op mcheck.Op) mcheck.Result { return mcheck.Result{} }
func (m *Machine) Snapshot() *mcheck.Snapshot       { return &mcheck.Snapshot{} }
func (m *Machine) Clone() mcheck.Machine            { c := *m; return &c }
func (m *Machine) Fingerprint() uint64              { return 0 }
func (m *Machine) Check() []string                  { return nil }
