package fuzz

import (
	"fmt"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/commands"
	"github.com/leanovate/gopter/gen"
	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

// wordSource reads choices from raw words (what gopter generates); missing words read as 0.
type wordSource struct {
	w []uint32
}

func (s *wordSource) Next(n int) int {
	if n <= 1 {
		return 0
	}
	if len(s.w) == 0 {
		return 0
	}
	v := s.w[0]
	s.w = s.w[1:]
	return int(v % uint32(n))
}

// maxChoicesPerOp bounds how many choices Draw takes for one op (kind + at most 4 keys).
const maxChoicesPerOp = 5

// gopterState is the commands' model state: the profile (the pair itself is the system under test).
type gopterState struct{ p mcheck.Profile }

func (s gopterState) String() string { return knobKey(s.p) }

// gopterSUT is the system under test: a session, or why it could not be built.
type gopterSUT struct {
	s   *Session
	err error
}

// opCommand is one op as a gopter command.
type opCommand struct {
	p  mcheck.Profile
	op mcheck.Op
	g  *GopterCommands
}

func (c opCommand) Run(sut commands.SystemUnderTest) commands.Result {
	x := sut.(*gopterSUT)
	if x.err != nil {
		return x.err
	}
	f := x.s.Apply(c.op)
	if f != nil && len(x.s.Ops) > 0 && f.Step == len(x.s.Ops)-1 {
		// This op found it: remember the trace (after shrinking, the last one is the smallest).
		c.g.LastFinding, c.g.LastTrace = f, x.s.Trace()
		return f
	}
	return nil // agreed, or an earlier op already failed (and its PostCondition said so)
}

func (c opCommand) NextState(s commands.State) commands.State { return s }
func (c opCommand) PreCondition(commands.State) bool          { return true }

func (c opCommand) PostCondition(_ commands.State, r commands.Result) *gopter.PropResult {
	switch r := r.(type) {
	case nil:
		return &gopter.PropResult{Status: gopter.PropTrue}
	case *checker.Finding:
		return &gopter.PropResult{Status: gopter.PropFalse, Error: fmt.Errorf("%s", Report(r, c.g.LastTrace))}
	case error:
		return &gopter.PropResult{Status: gopter.PropError, Error: r}
	}
	return &gopter.PropResult{Status: gopter.PropError, Error: fmt.Errorf("unexpected result %v", r)}
}

func (c opCommand) String() string { return c.op.String() }

// GopterCommands is the gopter commands description of the lockstep pair: the initial state is a
// profile variant (DrawProfile over raw words, or one of Only), each command is one op drawn by
// Draw over raw words and applied through Session.Apply; a finding fails the PostCondition.
// Shrinking drops commands (gopter's slice shrinker) and simplifies each op with
// checker.SimplerOps, the minimizer's own parameter simplification.
type GopterCommands struct {
	commands.ProtoCommands
	Inject []string
	Only   []mcheck.Profile
	// LastFinding and LastTrace are those of the most recent failing run; after Check has
	// shrunk a failure they describe the shrunk sequence.
	LastFinding *checker.Finding
	LastTrace   *mcheck.Trace
}

// NewGopterCommands builds the commands for faults inject (and optionally fixed profiles).
func NewGopterCommands(inject []string, only ...mcheck.Profile) *GopterCommands {
	g := &GopterCommands{Inject: inject, Only: only}
	words := gen.SliceOfN(maxChoicesPerOp, gen.UInt32())
	if len(only) > 0 {
		g.InitialStateGen = gen.IntRange(0, len(only)-1).Map(func(i int) gopterState {
			return gopterState{only[i]}
		})
	} else {
		g.InitialStateGen = gen.SliceOfN(2, gen.UInt32()).Map(func(w []uint32) gopterState {
			return gopterState{DrawProfile(&wordSource{w})}
		})
	}
	g.NewSystemUnderTestFunc = func(st commands.State) commands.SystemUnderTest {
		s, err := NewSession(st.(gopterState).p, g.Inject)
		if err == nil && s.Finding != nil {
			err = fmt.Errorf("initial state: %s", Report(s.Finding, s.Trace()))
		}
		return &gopterSUT{s: s, err: err}
	}
	g.GenCommandFunc = func(st commands.State) gopter.Gen {
		p := st.(gopterState).p
		return words.Map(func(w []uint32) commands.Command {
			return opCommand{p: p, op: Draw(&p, &wordSource{w}), g: g}
		}).WithShrinker(func(v interface{}) gopter.Shrink {
			c := v.(opCommand)
			l := checker.SimplerOps(&c.p, c.op)
			i := 0
			return func() (interface{}, bool) {
				if i >= len(l) {
					return nil, false
				}
				i++
				return commands.Command(opCommand{p: c.p, op: l[i-1], g: c.g}), true
			}
		})
	}
	return g
}

// Prop is the commands-based property.
func (g *GopterCommands) Prop() gopter.Prop { return commands.Prop(g) }

// GopterProperty is NewGopterCommands(inject, only...).Prop().
func GopterProperty(inject []string, only ...mcheck.Profile) gopter.Prop {
	return NewGopterCommands(inject, only...).Prop()
}

// GopterSeedEnv names the environment variable that sets TestGopterLockstep's seed.
const GopterSeedEnv = "MCHECK_GOPTER_SEED"
