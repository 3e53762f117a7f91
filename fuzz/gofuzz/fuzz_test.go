//go:build gofuzz

package gofuzz

import (
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/fuzz"
)

func TestFuzzEntry(t *testing.T) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	two := fuzz.Encode(p, []mcheck.Op{
		{Kind: mcheck.OpAddMemory, Block: 1, Nr: 1, MMOM: true},
		{Kind: mcheck.OpOnline, Block: 1, Type: mcheck.OnlineKernel},
	})
	if got := Fuzz(nil); got != 0 {
		t.Errorf("Fuzz(empty) = %d, want 0", got)
	}
	if got := Fuzz(two); got != 1 {
		t.Errorf("Fuzz(add; online) = %d, want 1", got)
	}
	// With the planted fault the same input is a crasher.
	inject = []string{"online-skips-vmemmap-present"}
	defer func() {
		inject = fuzz.InjectFromEnv()
		r := recover()
		if r == nil || !strings.Contains(r.(string), "mcheck trace") {
			t.Fatalf("Fuzz did not panic with the trace: %v", r)
		}
	}()
	Fuzz(two)
}
