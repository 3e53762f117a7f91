package fuzz

import (
	"fmt"
	"strings"

	"github.com/mcheck/mcheck"
	"pgregory.net/rapid"
)

// rapidSource draws each choice with rapid, so rapid records and shrinks the choices themselves
// (toward 0, the simplest value of every parameter).
type rapidSource struct{ t *rapid.T }

func (r rapidSource) Next(n int) int {
	if n <= 1 {
		return 0
	}
	return rapid.IntRange(0, n-1).Draw(r.t, "choice")
}

// ProfileGen generates a profile variant (DrawProfile), or one of the given profiles.
func ProfileGen(only ...mcheck.Profile) *rapid.Generator[mcheck.Profile] {
	if len(only) > 0 {
		return rapid.SampledFrom(only)
	}
	return rapid.Custom(func(t *rapid.T) mcheck.Profile { return DrawProfile(rapidSource{t}) })
}

// OpGen generates ops for p with the decoder's folding (Draw).
func OpGen(p *mcheck.Profile) *rapid.Generator[mcheck.Op] {
	return rapid.Custom(func(t *rapid.T) mcheck.Op { return Draw(p, rapidSource{t}) })
}

// OpGenKind generates ops of one kind for p (DrawParams).
func OpGenKind(p *mcheck.Profile, k mcheck.OpKind) *rapid.Generator[mcheck.Op] {
	return rapid.Custom(func(t *rapid.T) mcheck.Op { return DrawParams(p, k, rapidSource{t}) })
}

// RapidProperty is a rapid state machine over the op alphabet: it draws a profile (or one of
// only), then t.Repeat picks an op kind per step (one action per kind), draws its parameters
// with OpGenKind, applies it through Session.Apply and fails with Report on the first finding.
//
//	rapid.Check(t, fuzz.RapidProperty(fuzz.InjectFromEnv()))
//
// On failure rapid prints "-rapid.failfile=... (or -rapid.seed=N)" and writes the fail file
// under testdata/rapid/<Test>/; the trace is in the fail file's comments (fuzz.ImportFile).
func RapidProperty(inject []string, only ...mcheck.Profile) func(*rapid.T) {
	return rapidProperty(inject, nil, only...)
}

// rapidProperty is RapidProperty calling onSession with each run's session (ImportFile's replay).
func rapidProperty(inject []string, onSession func(*Session), only ...mcheck.Profile) func(*rapid.T) {
	return func(t *rapid.T) {
		p := ProfileGen(only...).Draw(t, "profile")
		s, err := NewSession(p, inject)
		if err != nil {
			t.Fatalf("mcheck: %v", err)
		}
		if onSession != nil {
			onSession(s)
		}
		if s.Finding != nil {
			t.Fatalf("%s", Report(s.Finding, s.Trace()))
		}
		reported := false
		defer func() {
			if r := recover(); r != nil && !reported && !strings.HasPrefix(fmt.Sprintf("%T", r), "rapid.") {
				// A panic in a machine: log the trace that led to it, then let rapid see the panic.
				t.Logf("panic: %v\n%s", r, Report(nil, s.Trace()))
				panic(r)
			}
		}()
		actions := map[string]func(*rapid.T){}
		for k := mcheck.OpKind(0); k < mcheck.NrOpKinds; k++ {
			k := k
			actions[mcheck.Specs[k].Name] = func(t *rapid.T) {
				op := OpGenKind(&s.Profile, k).Draw(t, "op")
				if f := s.Apply(op); f != nil {
					reported = true
					t.Fatalf("%s", Report(f, s.Trace()))
				}
			}
		}
		t.Repeat(actions)
	}
}
