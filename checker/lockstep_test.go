package checker

import (
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/impl"
)

func parseOps(t *testing.T, lines ...string) []mcheck.Op {
	t.Helper()
	var ops []mcheck.Op
	for _, l := range lines {
		op, err := mcheck.ParseOp(l)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	return ops
}

// A deliberate difference planted in impl is reported by the runner at the step where it first
// shows, and the fault-free pair runs the same sequence clean.
func TestRunnerReportsPlantedDifferenceAtItsStep(t *testing.T) {
	p, err := mcheck.LookupProfile("tiny-x86")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		fault string
		ops   []string
		step  int    // 0-based index of the op that must be reported
		kind  string // finding kind (or invariant id)
	}{
		{"online-skips-vmemmap-present", []string{
			"add_memory block=1 nr=1 memmap_on_memory=1", "pfn_valid pfn=0x40",
			"online block=1 type=movable", "offline block=1"}, 2, KindSnapshot},
		{"hvo-ignores-self-hosted", []string{
			"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=movable",
			"hugetlb_alloc block=1", "hugetlb_vmemmap_optimize block=1", "hugetlb_free block=1"}, 3, KindResult},
		{"block-device-error-drops-altmap", []string{
			"fail_next kind=block_device", "add_memory block=1 nr=1 memmap_on_memory=1",
			"add_memory block=1 nr=1 memmap_on_memory=1"}, 1, KindSnapshot},
		{"remove-drops-altmap", []string{
			"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=kernel", "offline block=1",
			"remove_memory block=1 nr=1", "pfn_valid pfn=0x40"}, 3, KindSnapshot},
	}
	names := strings.Join(impl.FaultNames(), ",")
	for _, c := range cases {
		if !strings.Contains(names, c.fault) {
			t.Fatalf("impl has no fault %q (has %s)", c.fault, names)
		}
		ops := parseOps(t, c.ops...)
		if f, err := Run(p, nil, ops); err != nil || f != nil {
			t.Fatalf("%s: the fault-free pair reports %v (%v)", c.fault, f, err)
		}
		f, err := Run(p, []string{c.fault}, ops)
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			t.Fatalf("%s: no finding", c.fault)
		}
		if f.Step != c.step || f.Kind != c.kind {
			t.Errorf("%s: finding at step %d (%s), want step %d (%s):\n%s", c.fault, f.Step, f.Kind, c.step, c.kind, f)
		}
		if len(f.Details) == 0 {
			t.Errorf("%s: finding has no field-level details", c.fault)
		}
	}
}

// The initial states agree and satisfy every invariant on every profile.
func TestInitialStatesAgree(t *testing.T) {
	for _, n := range mcheck.ProfileNames() {
		p, _ := mcheck.LookupProfile(n)
		q, err := NewPair(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f := q.CheckInitial(); f != nil {
			t.Errorf("%s: %s", n, f)
		}
	}
}
