package mcheck

import (
	"strings"
	"testing"
)

// Worked numbers of kernel-semantics.md §7, for every real profile.
func TestWorkedNumbers(t *testing.T) {
	const MiB = 1 << 20
	cases := []struct {
		profile       string
		block         int64
		kernel        string
		memmap, aside int // memmap pages; set-aside in force mode
		waste         int
		onOK, forceOK bool
	}{
		{"x86_64-4k", 128 * MiB, "6.8", 512, 512, 0, true, true},
		{"x86_64-4k", 1024 * MiB, "6.8", 4096, 4096, 0, true, true},
		{"x86_64-4k", 2048 * MiB, "6.8", 8192, 8192, 0, true, true},
		{"arm64-4k", 128 * MiB, "6.8", 512, 512, 0, true, true},
		{"arm64-16k", 128 * MiB, "6.8", 32, 2048, 2016, false, false},
		{"arm64-64k", 512 * MiB, "6.8", 8, 8192, 8184, false, false},
		{"ppc64-64k", 256 * MiB, "6.8", 4, 32, 28, false, true},
		{"ppc64-64k", 1024 * MiB, "6.8", 16, 32, 16, false, true},
		{"ppc64-64k", 2048 * MiB, "6.8", 32, 32, 0, true, true},
		{"ppc64-64k", 16 * MiB, "6.8", 1, 32, 31, false, false},
		{"s390x-4k", 256 * MiB, "6.8", 1024, 1024, 0, true, true},
	}
	for _, c := range cases {
		p, err := LookupProfile(c.profile)
		if err != nil {
			t.Fatal(err)
		}
		if p, err = p.WithBlockBytes(c.block); err != nil {
			t.Fatal(err)
		}
		k, _ := ParseKernel(c.kernel)
		on, force := ModeOn, ModeForce
		pOn, err := p.WithOverrides(Overrides{Kernel: &k, Mode: &on})
		if err != nil {
			t.Fatal(err)
		}
		pForce, err := p.WithOverrides(Overrides{Kernel: &k, Mode: &force})
		if err != nil {
			t.Fatal(err)
		}
		name := c.profile
		if got := pOn.MemmapPagesExact(); got != c.memmap {
			t.Errorf("%s %d MiB: memmap pages %d, want %d", name, c.block/MiB, got, c.memmap)
		}
		if got := pForce.MemmapOnMemoryPages(); got != c.aside {
			t.Errorf("%s %d MiB: force set-aside %d, want %d", name, c.block/MiB, got, c.aside)
		}
		if got := pForce.ForceWaste(); got != c.waste {
			t.Errorf("%s %d MiB: force waste %d, want %d", name, c.block/MiB, got, c.waste)
		}
		if got, why := pOn.SupportsMemmapOnMemory(1); got != c.onOK {
			t.Errorf("%s %d MiB: supported (on) = %v (%s), want %v", name, c.block/MiB, got, why, c.onOK)
		}
		if got, why := pForce.SupportsMemmapOnMemory(1); got != c.forceOK {
			t.Errorf("%s %d MiB: supported (force) = %v (%s), want %v", name, c.block/MiB, got, why, c.forceOK)
		}
	}
}

// Version rules of mhp_supports_memmap_on_memory.
func TestSupportByVersion(t *testing.T) {
	p, _ := LookupProfile("x86_64-4k")
	for _, c := range []struct {
		kernel string
		hvo    bool
		nr     int
		want   bool
	}{
		{"5.10", false, 1, false}, // before memmap_on_memory
		{"5.13", false, 1, true},
		{"5.15", true, 1, false}, // HVO wins on 5.14-5.19
		{"6.1", true, 1, true},   // compatible since 6.0
		{"6.1", false, 8, false}, // single block only
		{"6.6", false, 8, false}, // still sized (falls back)
		{"6.8", false, 8, true},  // split per block
	} {
		k, _ := ParseKernel(c.kernel)
		mode := ModeOn
		if k.Less(Kernel{5, 13}) {
			mode = ModeOff
		}
		q, err := p.WithOverrides(Overrides{Kernel: &k, Mode: &mode, HVO: &c.hvo})
		if err != nil {
			t.Fatal(err)
		}
		if got, why := q.SupportsMemmapOnMemory(c.nr); got != c.want {
			t.Errorf("%s hvo=%v nr=%d: %v (%s), want %v", c.kernel, c.hvo, c.nr, got, why, c.want)
		}
	}
	s390, _ := LookupProfile("s390x-4k")
	if ok, why := s390.SupportsMemmapOnMemory(1); ok || !strings.Contains(why, "6.8") {
		t.Errorf("s390x on 6.1 must be unsupported from 6.8: %v %q", ok, why)
	}
}

func TestOpRoundTrip(t *testing.T) {
	ops := []Op{
		{Kind: OpAddMemory, Block: 33, Nr: 2, MMOM: true},
		{Kind: OpRemoveMemory, Block: 1, Nr: 1},
		{Kind: OpOnline, Block: 2, Type: OnlineMovable},
		{Kind: OpOnline, Block: 2, Type: OnlineAuto},
		{Kind: OpOffline, Block: 7},
		{Kind: OpPin, Block: 1}, {Kind: OpUnpin, Block: 1},
		{Kind: OpHugetlbAlloc, Block: 1}, {Kind: OpHugetlbOptimize, Block: 1}, {Kind: OpHugetlbFree, Block: 1},
		{Kind: OpMemremap, Subsection: 5, Nr: 4, Reserve: 2, Free: 16},
		{Kind: OpMemunmap, Subsection: 5},
		{Kind: OpAllocContig, Pfn: 0x40, Nr: 16},
		{Kind: OpFailNext, Fault: FaultBlockDevice},
		{Kind: OpPfnValid, Pfn: 0x1234}, {Kind: OpPfnToOnlinePage, Pfn: 3},
	}
	seen := map[OpKind]bool{}
	for _, o := range ops {
		seen[o.Kind] = true
		got, err := ParseOp(o.String())
		if err != nil || got != o {
			t.Errorf("%q: parsed %+v, %v", o.String(), got, err)
		}
	}
	if len(seen) != int(NrOpKinds) {
		t.Errorf("round trip covers %d of %d op kinds", len(seen), NrOpKinds)
	}
}

func TestParseOpErrors(t *testing.T) {
	for _, l := range []string{"", "frobnicate block=1", "online block=1", "online block=1 type=sideways",
		"offline block=-1", "offline block=1 block=2", "offline blk=1", "offline 1", "add_memory block=1 nr=1 memmap_on_memory=2"} {
		if _, err := ParseOp(l); err == nil {
			t.Errorf("%q parsed without error", l)
		}
	}
}

func TestTraceRoundTrip(t *testing.T) {
	src := TraceMagic + `
# profile: tiny-x86
# kernel: 6.6
# memmap_on_memory: force
# inject: a,b
# expect: violation INV-8
# a comment
add_memory block=1 nr=1 memmap_on_memory=1   # trailing comment
online block=1 type=movable
`
	tr, err := ParseTrace(strings.NewReader(src), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Ops) != 2 || tr.Expect != "violation INV-8" || len(tr.Inject) != 2 || tr.Overrides.Mode == nil || *tr.Overrides.Mode != ModeForce {
		t.Fatalf("parsed %+v", tr)
	}
	again, err := ParseTrace(strings.NewReader(tr.String()), "t2")
	if err != nil || again.String() != tr.String() {
		t.Fatalf("round trip:\n%s\n%s\n%v", tr, again, err)
	}
	for _, bad := range []string{"add_memory block=1 nr=1 memmap_on_memory=1\n", TraceMagic + "\nonline block=1 type=kernel\n",
		TraceMagic + "\n# profile: nope\n", TraceMagic + "\n# profile: tiny-x86\n# kernel: 6.1\n# memmap_on_memory: force\n"} {
		if _, err := ParseTrace(strings.NewReader(bad), "bad"); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func TestProfilesValidate(t *testing.T) {
	for _, n := range ProfileNames() {
		p, _ := LookupProfile(n)
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
	}
	p, _ := LookupProfile("tiny-x86")
	bad := p
	bad.MaxOrder = 9
	if bad.Validate() == nil {
		t.Error("MAX_PAGE_ORDER beyond the section accepted")
	}
	zero := 0
	if _, err := p.WithOverrides(Overrides{Blocks: &zero}); err == nil {
		t.Error("zero hot-pluggable blocks accepted")
	}
}

func TestSubsectionMap(t *testing.T) {
	var m SubsectionMap
	m.SetRange(60, 130)
	if !m.AllInRange(60, 130) || m.AnyInRange(0, 60) || m.AnyInRange(130, 256) || m.Count() != 70 {
		t.Fatalf("SetRange: %s", m)
	}
	m.ClearRange(64, 128)
	if m.Count() != 6 || !m.Test(63) || m.Test(64) || !m.Test(129) {
		t.Fatalf("ClearRange: %s", m)
	}
}
