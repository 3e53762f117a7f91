package fuzz

import (
	"reflect"
	"strings"

	"github.com/mcheck/mcheck"
)

// Fataler is the part of testing.TB the fuzz target bodies need; *testing.T, rapid's *T and
// OSS-Fuzz's testing shim all have it.
type Fataler interface {
	Fatalf(format string, args ...any)
}

// CheckBytes is the body of every byte-driven fuzz target (FuzzLockstep, the OSS-Fuzz harness):
// decode, run in lockstep with faults inject, and fail with the finding and its trace.
func CheckBytes(t Fataler, data []byte, inject []string) {
	f, tr, err := RunBytes(data, inject)
	if err != nil {
		t.Fatalf("mcheck: %v", err)
		return
	}
	if f != nil {
		t.Fatalf("%s", Report(f, tr))
	}
}

// PlantedOnlyEnv, when set (to anything) together with MCHECK_FUZZ_INJECT, makes FuzzLockstep
// ignore findings that also happen without the planted faults (real bugs), so that a run measures
// how fast the fuzzer finds the planted fault even while such bugs exist.
const PlantedOnlyEnv = "MCHECK_FUZZ_PLANTED_ONLY"

// CheckBytesPlantedOnly is CheckBytes that fails only on findings caused by the faults in inject:
// an input that fails without them too is ignored.
func CheckBytesPlantedOnly(t Fataler, data []byte, inject []string) {
	f, tr, err := RunBytes(data, inject)
	if err != nil {
		t.Fatalf("mcheck: %v", err)
		return
	}
	if f == nil || len(inject) == 0 {
		return
	}
	if g, _, err := RunBytes(data, nil); err == nil && g != nil {
		return // a real bug, not the planted fault
	}
	t.Fatalf("%s", Report(f, tr))
}

// CheckTraceText is the body of FuzzTrace: the trace parser never panics; whatever it accepts
// prints back to a trace that parses to the same thing (ParseTrace(Format(t)) == t); every op
// line it accepts round-trips (ParseOp(o.String()) == o); and the ops Decode makes of the same
// bytes round-trip, alone and as a whole trace.
func CheckTraceText(t Fataler, text string) {
	if tr, err := mcheck.ParseTrace(strings.NewReader(text), "input"); err == nil {
		CheckTraceRoundTrip(t, tr)
	}
	for _, line := range strings.Split(text, "\n") {
		if op, err := mcheck.ParseOp(line); err == nil {
			CheckOpRoundTrip(t, op)
		}
	}
	p, ops := Decode([]byte(text))
	for _, op := range ops {
		CheckOpRoundTrip(t, op)
	}
	CheckTraceRoundTrip(t, MakeTrace(p, []string{"x"}, ops, nil))
}

// CheckOpRoundTrip fails unless ParseOp(op.String()) == op.
func CheckOpRoundTrip(t Fataler, op mcheck.Op) {
	back, err := mcheck.ParseOp(op.String())
	if err != nil {
		t.Fatalf("ParseOp(%q): %v (op %#v)", op.String(), err, op)
		return
	}
	if back != op {
		t.Fatalf("ParseOp(%q) = %#v, want %#v", op.String(), back, op)
	}
}

// CheckTraceRoundTrip fails unless tr's canonical text parses back to the same trace.
func CheckTraceRoundTrip(t Fataler, tr *mcheck.Trace) {
	text := tr.String()
	back, err := mcheck.ParseTrace(strings.NewReader(text), "formatted")
	if err != nil {
		t.Fatalf("the formatted trace does not parse: %v\n%s", err, text)
		return
	}
	if again := back.String(); again != text {
		t.Fatalf("Format(ParseTrace(Format(t))) != Format(t):\n%s\n---\n%s", text, again)
		return
	}
	if len(back.Ops)+len(tr.Ops) > 0 && !reflect.DeepEqual(back.Ops, tr.Ops) {
		t.Fatalf("ops changed in the round trip:\n%v\n%v", tr.Ops, back.Ops)
		return
	}
	if back.Profile != tr.Profile || back.Expect != tr.Expect ||
		len(back.Inject)+len(tr.Inject) > 0 && !reflect.DeepEqual(back.Inject, tr.Inject) {
		t.Fatalf("header changed in the round trip:\n%s\n---\n%s", text, back)
	}
}
