// Package model is the reference specification of the memory-hotplug machine.
package model

import "github.com/mcheck/mcheck"

// Machine is the reference model (placeholder until the spec lands).
type Machine struct{ p mcheck.Profile }

// New builds the initial state of profile p.
func New(p mcheck.Profile) *Machine { return &Machine{p: p} }

func (m *Machine) Apply(op mcheck.Op) mcheck.Result { return mcheck.Result{} }
func (m *Machine) Snapshot() *mcheck.Snapshot       { return &mcheck.Snapshot{} }
func (m *Machine) Clone() mcheck.Machine            { c := *m; return &c }
func (m *Machine) Fingerprint() uint64              { return 0 }
func (m *Machine) Check() []string                  { return nil }
