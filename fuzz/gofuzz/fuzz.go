//go:build gofuzz

// Package gofuzz is the go-fuzz entry point of mcheck: the same decoder (fuzz.Decode) and the same
// apply/check path (fuzz.Session, i.e. checker.Pair.Step) as FuzzLockstep. It lives in a nested
// module so go-fuzz's dependency stays out of mcheck's go.mod.
//
//	go install github.com/dvyukov/go-fuzz/go-fuzz@latest github.com/dvyukov/go-fuzz/go-fuzz-build@latest
//	cd fuzz/gofuzz && go-fuzz-build && go-fuzz -bin=gofuzz-fuzz.zip -workdir=workdir
//
// Faults to plant come from $MCHECK_FUZZ_INJECT, as for the other drivers.
package gofuzz

import (
	"github.com/mcheck/mcheck/fuzz"
)

var inject = fuzz.InjectFromEnv()

// Fuzz decodes data, runs it in lockstep and panics (a go-fuzz crasher) on any finding. It
// returns 1 for inputs that decode to at least one op (worth keeping), 0 otherwise.
func Fuzz(data []byte) int {
	f, tr, err := fuzz.RunBytes(data, inject)
	if err != nil {
		panic("mcheck: " + err.Error())
	}
	if f != nil {
		// The first line names only the failure class, so go-fuzz files one crasher per class
		// (it deduplicates on the panic message) instead of one per op sequence.
		panic("mcheck finding " + f.ID() + "\n" + fuzz.Report(f, tr))
	}
	if len(tr.Ops) == 0 {
		return 0
	}
	return 1
}
