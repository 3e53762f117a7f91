package checker

import (
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
)

func parseTrace(t *testing.T, text string) *mcheck.Trace {
	t.Helper()
	tr, err := mcheck.ParseTrace(strings.NewReader(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// noisy is a long trace around the ingredients of each planted fault: every op kind, on both
// hot-pluggable blocks, before, between and after the ops that matter.
const noisyPrefix = `# mcheck trace v1
# profile: tiny-x86
`

var noise = []string{
	"pfn_valid pfn=0x50",
	"memremap subsection=3 nr=1 reserve=0 free=0",
	"add_memory block=2 nr=1 memmap_on_memory=0",
	"online block=2 type=movable",
	"hugetlb_alloc block=2",
	"pfn_to_online_page pfn=0x90",
	"alloc_contig pfn=0x90 nr=16",
	"fail_next kind=usage",
	"memremap subsection=3 nr=1 reserve=0 free=0",
	"hugetlb_free block=2",
	"memunmap subsection=3",
	"offline block=2",
}

func noisyTrace(t *testing.T, inject string, core []string) *mcheck.Trace {
	var b strings.Builder
	b.WriteString(noisyPrefix)
	b.WriteString("# inject: " + inject + "\n")
	for i, c := range core {
		// interleave: a slice of noise before each core op, the rest at the end
		for _, n := range noise[i*len(noise)/(len(core)+1) : (i+1)*len(noise)/(len(core)+1)] {
			b.WriteString(n + "\n")
		}
		b.WriteString(c + "\n")
	}
	for _, n := range noise[len(core)*len(noise)/(len(core)+1):] {
		b.WriteString(n + "\n")
	}
	return parseTrace(t, b.String())
}

func TestMinimizePlantedFaults(t *testing.T) {
	cases := []struct {
		fault    string
		core     []string
		shortest int // length of the shortest counterexample
	}{
		{"online-skips-vmemmap-present", []string{
			"add_memory block=1 nr=1 memmap_on_memory=1",
			"online block=1 type=movable",
		}, 2},
		{"remove-drops-altmap", []string{
			"add_memory block=1 nr=1 memmap_on_memory=1",
			"remove_memory block=1 nr=1",
		}, 2},
		{"hvo-ignores-self-hosted", []string{
			"add_memory block=1 nr=1 memmap_on_memory=1",
			"online block=1 type=movable",
			"hugetlb_alloc block=1",
			"hugetlb_vmemmap_optimize block=1",
		}, 4},
	}
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			in := noisyTrace(t, c.fault, c.core)
			clean := *in
			clean.Inject = nil
			if f, err := RunTrace(&clean); err != nil || f != nil {
				t.Fatalf("without the fault the trace must pass; got %v (err %v)", f, err)
			}
			f0, err := RunTrace(in)
			if err != nil {
				t.Fatal(err)
			}
			if f0 == nil {
				t.Fatalf("the noisy trace does not fail:\n%s", in)
			}
			out, f, err := Minimize(in)
			if err != nil {
				t.Fatal(err)
			}
			if f.ID() != f0.ID() || out.Expect != f0.Expect() {
				t.Fatalf("minimized to %s (expect %q), want %s", f.ID(), out.Expect, f0.ID())
			}
			if len(out.Ops) > c.shortest+2 {
				t.Errorf("minimized %d ops to %d, want at most %d:\n%s", len(in.Ops), len(out.Ops), c.shortest+2, out)
			}
			// The result replays as its header says, from its text.
			back := parseTrace(t, out.String())
			g, err := RunTrace(back)
			if err != nil || !ExpectMatches(back.Expect, g) {
				t.Fatalf("minimized trace does not replay to %q: %v %v\n%s", back.Expect, g, err, out)
			}
			// Deterministic.
			out2, _, err := Minimize(in)
			if err != nil || out2.String() != out.String() {
				t.Fatalf("not deterministic:\n%s\n---\n%s", out, out2)
			}
			t.Logf("%d ops -> %d:\n%s", len(in.Ops), len(out.Ops), out)
		})
	}
}

// TestMinimizeSimplifiesParameters: the shortest counterexample comes back with the simplest
// parameters (first hot-pluggable block, type=kernel), whatever the input used.
func TestMinimizeSimplifiesParameters(t *testing.T) {
	in := parseTrace(t, `# mcheck trace v1
# profile: tiny-x86
# inject: online-skips-vmemmap-present
add_memory block=2 nr=1 memmap_on_memory=1
online block=2 type=movable
`)
	out, _, err := Minimize(in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range out.Ops {
		got = append(got, op.String())
	}
	want := []string{"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=kernel"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("minimized to\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out.Overrides.Kernel == nil || out.Overrides.Mode == nil || len(out.Inject) != 1 {
		t.Errorf("header not pinned / inject lost:\n%s", out)
	}
}

func TestMinimizeNoFinding(t *testing.T) {
	in := parseTrace(t, `# mcheck trace v1
# profile: tiny-x86
add_memory block=1 nr=1 memmap_on_memory=1
`)
	if _, _, err := Minimize(in); err == nil {
		t.Fatal("Minimize of a passing trace: no error")
	}
}

func TestSimplerOps(t *testing.T) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	for k := mcheck.OpKind(0); k < mcheck.NrOpKinds; k++ {
		op := mcheck.Op{Kind: k, Block: 2, Nr: 3, MMOM: true, Type: mcheck.OnlineMovable, Subsection: 9, Reserve: 3, Free: 9, Pfn: 0x99, Fault: mcheck.FaultNotifier}
		// canonical: only the kind's keys set
		op, _ = mcheck.ParseOp(op.String())
		for _, s := range SimplerOps(&p, op) {
			if s == op {
				t.Errorf("%s: SimplerOps returned the op itself", op)
			}
			back, err := mcheck.ParseOp(s.String())
			if err != nil || back != s {
				t.Errorf("%s: simpler op %s is not canonical (%v)", op, s, err)
			}
		}
	}
	if l := SimplerOps(&p, mcheck.Op{Kind: mcheck.OpOnline, Block: 1, Type: mcheck.OnlineKernel}); len(l) != 0 {
		t.Errorf("online block=1 type=kernel: simpler %v, want none", l)
	}
}
