package fuzz

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mcheck/mcheck"
	"pgregory.net/rapid"
)

// ImportFile turns what a fuzzer left behind into a trace:
//
//   - a native fuzz input (testdata/fuzz/FuzzLockstep/<hash>, "go test fuzz v1" then []byte("...")):
//     decoded with Decode;
//   - a rapid fail file (testdata/rapid/<Test>/<Test>-<time>-<pid>.fail): the trace the property
//     logged between the "--- mcheck trace ---" markers (rapid stores the failing run's output as
//     comments); if the file has none (written by another property), the recorded choice buffer
//     is replayed through RapidProperty to recover the ops;
//   - an mcheck trace (returned as parsed);
//   - anything else, e.g. a go-fuzz crasher or corpus file: raw bytes, decoded with Decode.
//
// Byte inputs and replayed rapid files carry no fault switches: the trace's inject is taken from
// $MCHECK_FUZZ_INJECT, as the fuzzers do (ImportFileInject sets it explicitly). The trace's Expect
// is left empty; replay or minimize it to learn the outcome.
func ImportFile(path string) (*mcheck.Trace, error) {
	return ImportFileInject(path, InjectFromEnv())
}

// ImportFileInject is ImportFile with the fault switches for byte inputs given explicitly.
func ImportFileInject(path string, inject []string) (*mcheck.Trace, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Import(data, path, inject)
}

// Import is ImportFileInject on file contents; name labels errors.
func Import(data []byte, name string, inject []string) (*mcheck.Trace, error) {
	text := string(data)
	first, _, _ := strings.Cut(text, "\n")
	first = strings.TrimSpace(first)
	switch {
	case first == "go test fuzz v1":
		return importNative(text, name, inject)
	case first == mcheck.TraceMagic:
		return mcheck.ParseTrace(strings.NewReader(text), name)
	case isRapidFailFile(text):
		return importRapid(text, name, inject)
	}
	p, ops := Decode(data)
	return MakeTrace(p, inject, ops, nil), nil
}

// importNative reads the single []byte or string argument of a native fuzz corpus file.
func importNative(text, name string, inject []string) (*mcheck.Trace, error) {
	lines := strings.Split(text, "\n")[1:]
	var args []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			args = append(args, l)
		}
	}
	if len(args) != 1 {
		return nil, fmt.Errorf("%s: native fuzz file with %d values, want 1", name, len(args))
	}
	a := args[0]
	var lit string
	isString := false
	switch {
	case strings.HasPrefix(a, "[]byte(") && strings.HasSuffix(a, ")"):
		lit = a[len("[]byte(") : len(a)-1]
	case strings.HasPrefix(a, "string(") && strings.HasSuffix(a, ")"):
		lit, isString = a[len("string("):len(a)-1], true
	default:
		return nil, fmt.Errorf("%s: native fuzz value %q: want []byte(\"...\") or string(\"...\")", name, a)
	}
	s, err := strconv.Unquote(lit)
	if err != nil {
		return nil, fmt.Errorf("%s: native fuzz value: %v", name, err)
	}
	if isString {
		// FuzzTrace inputs are trace text.
		return mcheck.ParseTrace(strings.NewReader(s), name)
	}
	p, ops := Decode([]byte(s))
	return MakeTrace(p, inject, ops, nil), nil
}

var rapidHeader = regexp.MustCompile(`^v[0-9][0-9.]*#[0-9]+$`)

func isRapidFailFile(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		return rapidHeader.MatchString(l)
	}
	return false
}

// importRapid extracts the last logged trace from a rapid fail file's comments, or replays it.
func importRapid(text, name string, inject []string) (*mcheck.Trace, error) {
	var block []string
	var last []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		body := strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		switch {
		case strings.HasSuffix(strings.TrimSpace(body), traceBegin):
			in, block = true, nil
		case in && strings.TrimSpace(body) == traceEnd:
			in, last = false, block
		case in:
			block = append(block, body)
		}
	}
	if last != nil {
		return mcheck.ParseTrace(strings.NewReader(strings.Join(last, "\n")+"\n"), name)
	}
	return replayRapid(name, inject)
}

// rapidFlags serializes replays: they set rapid's command-line flags.
var rapidFlags sync.Mutex

// replayRapid runs RapidProperty on the fail file's recorded choices and returns the ops of that
// run. It sets rapid's -rapid.failfile, -rapid.checks=0 and -rapid.nofailfile flags for the
// duration, so only the recorded run (and rapid's confirmation re-run) happen.
func replayRapid(path string, inject []string) (*mcheck.Trace, error) {
	rapidFlags.Lock()
	defer rapidFlags.Unlock()
	testing.Init() // rapid calls testing.Short; outside `go test` the testing flags are not registered
	set := map[string]string{"rapid.failfile": path, "rapid.checks": "0", "rapid.nofailfile": "true"}
	for k, v := range set {
		fl := flag.Lookup(k)
		if fl == nil {
			return nil, fmt.Errorf("%s: rapid flag -%s not registered", path, k)
		}
		old := fl.Value.String()
		if err := fl.Value.Set(v); err != nil {
			return nil, err
		}
		defer fl.Value.Set(old)
	}
	var last *Session
	prop := rapidProperty(inject, func(s *Session) { last = s })
	tb := &replayTB{}
	func() {
		defer func() { _ = recover() }() // a fake TB cannot Goexit: FailNow panics out of Check
		rapid.Check(tb, prop)
	}()
	if last == nil || !tb.failed {
		return nil, fmt.Errorf("%s: the rapid fail file does not reproduce a failure (log: %s)", path, strings.TrimSpace(tb.log.String()))
	}
	return last.Trace(), nil
}

// replayTB is a rapid.TB that records instead of failing a real test.
type replayTB struct {
	failed bool
	log    bytes.Buffer
}

func (r *replayTB) Helper()                         {}
func (r *replayTB) Name() string                    { return "mcheck-import" }
func (r *replayTB) Logf(format string, args ...any) { fmt.Fprintf(&r.log, format+"\n", args...) }
func (r *replayTB) Log(args ...any)                 { fmt.Fprintln(&r.log, args...) }
func (r *replayTB) Skipf(format string, args ...any) {
	r.Logf(format, args...)
	r.SkipNow()
}
func (r *replayTB) Skip(args ...any) { r.Log(args...); r.SkipNow() }
func (r *replayTB) SkipNow()         { panic(replayStop{}) }
func (r *replayTB) Errorf(format string, args ...any) {
	r.failed = true
	r.Logf(format, args...)
}
func (r *replayTB) Error(args ...any) { r.failed = true; r.Log(args...) }
func (r *replayTB) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.FailNow()
}
func (r *replayTB) Fatal(args ...any) { r.Error(args...); r.FailNow() }
func (r *replayTB) FailNow()          { r.failed = true; panic(replayStop{}) }
func (r *replayTB) Fail()             { r.failed = true }
func (r *replayTB) Failed() bool      { return r.failed }

type replayStop struct{}
