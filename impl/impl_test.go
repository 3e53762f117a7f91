package impl

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
)

// ---------------------------------------------------------------------------------------------
// Helpers.

func prof(t testing.TB, name, kernel string, mode mcheck.Mode, mods ...func(*mcheck.Overrides)) mcheck.Profile {
	t.Helper()
	p, err := mcheck.LookupProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	o := mcheck.Overrides{Mode: &mode}
	if kernel != "" {
		k, err := mcheck.ParseKernel(kernel)
		if err != nil {
			t.Fatal(err)
		}
		o.Kernel = &k
	}
	for _, f := range mods {
		f(&o)
	}
	p, err = p.WithOverrides(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newM(t testing.TB, p mcheck.Profile, faults ...string) *Machine {
	t.Helper()
	m, err := New(p, faults...)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Check(); c != nil {
		t.Fatalf("initial state inconsistent: %v", c)
	}
	return m
}

// do applies a trace line and checks the errno and the machine's self-consistency.
func do(t testing.TB, m *Machine, line string, want mcheck.Errno) mcheck.Result {
	t.Helper()
	op, err := mcheck.ParseOp(line)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Apply(op)
	if r.Errno != want {
		t.Fatalf("%s: got %s, want %s", line, r, want)
	}
	if c := m.Check(); c != nil {
		t.Fatalf("%s: Check: %s", line, strings.Join(c, "; "))
	}
	return r
}

func eq[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// sameExcept compares two snapshots, ignoring Pending and Pageblocks (what a failed op may change).
func sameExcept(t testing.TB, what string, a, b *mcheck.Snapshot) {
	t.Helper()
	x, y := *a, *b
	x.Pending, y.Pending = 0, 0
	x.Pageblocks, y.Pageblocks = nil, nil
	if d := mcheck.Diff(&x, &y, "before", "after", 10); len(d) > 0 {
		t.Fatalf("%s changed state:\n  %s", what, strings.Join(d, "\n  "))
	}
}

func altmapOf(t testing.TB, s *mcheck.Snapshot, id int) *mcheck.AltmapSnap {
	t.Helper()
	b := s.Block(id)
	if b == nil || b.Altmap == nil {
		t.Fatalf("block %d has no altmap (%+v)", id, b)
	}
	return b.Altmap
}

// ---------------------------------------------------------------------------------------------
// Worked numbers on real profiles.

func TestX86WorkedExample(t *testing.T) {
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn) // kernel 6.12 (P4)
	m := newM(t, p)
	init := m.Snapshot()
	B := p.HotplugStart
	start := p.BlockStart(B)
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", mcheck.OK)
	s := m.Snapshot()
	eq(t, "NrVmemmap", s.Block(B).NrVmemmap, 512)
	a := altmapOf(t, s, B)
	eq(t, "altmap", *a, mcheck.AltmapSnap{BasePfn: start, EndPfn: start + 32767, Free: 512, Alloc: 512})
	v := p.VmemmapPage(start)
	r := s.VmemmapAt(v)
	eq(t, "vmemmap src", r.Src, mcheck.SrcAltmap)
	eq(t, "vmemmap size", r.Size, mcheck.MapPMD)
	eq(t, "vmemmap frame", r.Frame, start)
	eq(t, "vmemmap altmap", r.Altmap, start)
	eq(t, "last vmemmap page frame", s.VmemmapAt(v+511).Frame, start+511)
	eq(t, "next section unmapped", s.VmemmapAt(v+512).Src, mcheck.SrcUnmapped)
	eq(t, "section word", s.Sections[B].Flags, uint8(mcheck.SectionMarkedPresent|mcheck.SectionHasMemMap))
	eq(t, "page state", s.PageAt(start).State, mcheck.PagePoisoned)
	eq(t, "pfn_valid", do(t, m, "pfn_valid pfn=0x100000", 0).Val, 1)

	do(t, m, "online block=32 type=movable", mcheck.OK)
	s = m.Snapshot()
	z := s.Zones[mcheck.ZoneMovable]
	eq(t, "Movable present", z.Present, 32768)
	eq(t, "Movable managed", z.Managed, 32768-512)
	eq(t, "Movable span", [2]int{z.Start, z.End}, [2]int{start, start + 32768})
	eq(t, "set-aside", s.PageAt(start+511), mcheck.PageRun{Start: start, N: 512, State: mcheck.PageSelfHosted, Zone: mcheck.ZoneMovable})
	eq(t, "first free", s.PageAt(start+512).State, mcheck.PageFree)
	eq(t, "set-aside pageblock", s.PageblockAt(start/512), mcheck.MTUnmovable)
	eq(t, "rest pageblock", s.PageblockAt(start/512+1), mcheck.MTMovable)
	eq(t, "online", s.Sections[B].Flags&mcheck.SectionIsOnline != 0, true)
	eq(t, "pfn_to_online_page", do(t, m, "pfn_to_online_page pfn=0x100000", 0).Val, 1)
	do(t, m, "pin block=32", mcheck.ENOMEM) // movable zone

	do(t, m, "offline block=32", mcheck.OK)
	s = m.Snapshot()
	eq(t, "Movable after offline", s.Zones[mcheck.ZoneMovable], mcheck.ZoneSnap{})
	eq(t, "pages after offline", s.PageAt(start).State, mcheck.PagePoisoned)
	eq(t, "pageblocks stay isolated", s.PageblockAt(start/512+1), mcheck.MTIsolate)

	do(t, m, "remove_memory block=32 nr=1", mcheck.OK)
	s = m.Snapshot()
	eq(t, "block gone", s.Block(B) == nil, true)
	eq(t, "section word", s.Sections[B], mcheck.SectionSnap{})
	eq(t, "vmemmap unmapped", s.VmemmapAt(v).Src, mcheck.SrcUnmapped)
	eq(t, "AltmapLeaks", s.AltmapLeaks, 0)
	eq(t, "BadFrees", s.BadFrees, 0)
	if d := mcheck.Diff(init, s, "initial", "after", 10); len(d) > 0 {
		t.Fatalf("add/online/offline/remove is not a round trip: %v", d)
	}
	eq(t, "fingerprint round trip", m.Fingerprint(), newM(t, p).Fingerprint())
}

func TestX86KernelZoneAndPins(t *testing.T) {
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn)
	m := newM(t, p)
	start := p.BlockStart(32)
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", 0)
	do(t, m, "online block=32 type=kernel", 0)
	s := m.Snapshot()
	eq(t, "zone", s.Block(32).Zone, mcheck.ZoneNormal)
	do(t, m, "pin block=32", 0)
	do(t, m, "pin block=32", 0)
	s = m.Snapshot()
	eq(t, "pins", s.PageAt(start+512), mcheck.PageRun{Start: start + 512, N: 2, State: mcheck.PagePinned, Zone: mcheck.ZoneNormal})
	do(t, m, "offline block=32", mcheck.EBUSY)
	do(t, m, "alloc_contig pfn=0x100200 nr=1", mcheck.EBUSY)
	do(t, m, "alloc_contig pfn=0x100000 nr=1", mcheck.EBUSY) // self-hosted
	do(t, m, "alloc_contig pfn=0x100400 nr=512", 0)
	do(t, m, "hugetlb_alloc block=32", 0) // first 512-aligned free run: slot 2
	s = m.Snapshot()
	eq(t, "folio", len(s.Folios), 1)
	eq(t, "folio pfn", s.Folios[0].Pfn, start+1024)
	do(t, m, "hugetlb_vmemmap_optimize block=32", mcheck.EOPNOTSUPP) // HVO off
	do(t, m, "unpin block=32", 0)
	do(t, m, "unpin block=32", 0)
	do(t, m, "unpin block=32", mcheck.ENOENT)
	do(t, m, "pin block=32", 0) // lowest free again
	eq(t, "re-pin", m.Snapshot().PageAt(start+512).State, mcheck.PagePinned)
	do(t, m, "unpin block=32", 0)
	do(t, m, "alloc_contig pfn=0x100400 nr=512", 0) // migrates the folio away
	eq(t, "folio migrated", len(m.Snapshot().Folios), 0)
	do(t, m, "hugetlb_alloc block=32", 0)
	do(t, m, "offline block=32", 0)
	eq(t, "folios after offline", len(m.Snapshot().Folios), 0)
	eq(t, "Normal after offline", m.Snapshot().Zones[mcheck.ZoneNormal], mcheck.ZoneSnap{})
}

func TestARM64WorkedExample(t *testing.T) {
	p := prof(t, "arm64-4k", "", mcheck.ModeOn)
	m := newM(t, p)
	start := p.BlockStart(8)
	do(t, m, "add_memory block=8 nr=1 memmap_on_memory=1", 0)
	s := m.Snapshot()
	eq(t, "altmap", *altmapOf(t, s, 8), mcheck.AltmapSnap{BasePfn: start, EndPfn: start + 32767, Free: 512, Alloc: 512})
	eq(t, "vmemmap size", s.VmemmapAt(p.VmemmapPage(start)).Size, mcheck.MapPMD)
	// A subsection-granular ZONE_DEVICE range: base pages from the driver altmap (arm64 rule).
	do(t, m, "memremap subsection=1088 nr=1 reserve=0 free=512", 0) // block 17
	s = m.Snapshot()
	g := s.Pgmaps[0]
	eq(t, "pgmap altmap alloc", g.Altmap.Alloc, 8)
	r := s.VmemmapAt(p.VmemmapPage(1088 * 512))
	eq(t, "device vmemmap src", r.Src, mcheck.SrcAltmap)
	eq(t, "device vmemmap size", r.Size, mcheck.MapBase)
	eq(t, "taint", s.Sections[17].Flags&mcheck.SectionTaintZoneDevice != 0, true)
	eq(t, "device-memmap pages", s.PageAt(1088*512).State, mcheck.PageDeviceMemmap)
	do(t, m, "memunmap subsection=1088", 0)
	s = m.Snapshot()
	eq(t, "leaks", s.AltmapLeaks, 0)
	eq(t, "section 17", s.Sections[17], mcheck.SectionSnap{})
}

func TestPPCForce(t *testing.T) {
	p := prof(t, "ppc64-64k", "", mcheck.ModeForce) // 6.12
	m := newM(t, p)
	s := m.Snapshot()
	eq(t, "boot vmemmap PMD", s.VmemmapAt(0).Size, mcheck.MapPMD)
	eq(t, "boot PMD covers beyond boot", s.VmemmapAt(31).Src, mcheck.SrcBoot)
	B := 8
	start := p.BlockStart(B)
	do(t, m, "add_memory block=8 nr=1 memmap_on_memory=1", 0)
	s = m.Snapshot()
	eq(t, "NrVmemmap", s.Block(B).NrVmemmap, 32)
	a := altmapOf(t, s, B)
	eq(t, "altmap", *a, mcheck.AltmapSnap{BasePfn: start, EndPfn: start + 4095, Free: 32, Alloc: 4})
	v := p.VmemmapPage(start)
	r := s.VmemmapAt(v)
	eq(t, "vmemmap", [3]int{int(r.Src), int(r.Size), r.Frame}, [3]int{int(mcheck.SrcAltmap), int(mcheck.MapBase), start})
	eq(t, "vmemmap 4th page", s.VmemmapAt(v+3).Frame, start+3)
	do(t, m, "online block=8 type=movable", 0)
	s = m.Snapshot()
	eq(t, "set-aside", s.PageAt(start), mcheck.PageRun{Start: start, N: 32, State: mcheck.PageSelfHosted, Zone: mcheck.ZoneMovable})
	eq(t, "online range start", s.PageAt(start+32).Start, start+32)
	eq(t, "online range state", s.PageAt(start+32).State, mcheck.PageFree)
	eq(t, "present", s.Zones[mcheck.ZoneMovable].Present, 4096)
	eq(t, "managed", s.Zones[mcheck.ZoneMovable].Managed, 4096-32)
	do(t, m, "offline block=8", 0)
	do(t, m, "remove_memory block=8 nr=1", 0)
	s = m.Snapshot()
	eq(t, "leaks", s.AltmapLeaks, 0)
	eq(t, "bad frees", s.BadFrees, 0)
	eq(t, "vmemmap released", s.VmemmapAt(v).Src, mcheck.SrcUnmapped)
}

func TestMultiBlockByVersion(t *testing.T) {
	for _, tc := range []struct {
		kernel string
		want   mcheck.Errno
		nv     int
		altmap bool
	}{
		{"5.15", mcheck.EINVAL, 0, false}, // P1
		{"6.1", mcheck.EINVAL, 0, false},  // P2
		{"6.6", 0, 0, false},              // P3: falls back
		{"6.8", 0, 512, true},             // P4: per-block altmaps
		{"6.12", 0, 512, true},
	} {
		t.Run(tc.kernel, func(t *testing.T) {
			p := prof(t, "x86_64-4k", tc.kernel, mcheck.ModeOn)
			m := newM(t, p)
			before := m.Snapshot()
			do(t, m, "add_memory block=32 nr=8 memmap_on_memory=1", tc.want)
			s := m.Snapshot()
			if tc.want != 0 {
				sameExcept(t, "failed add", before, s)
				return
			}
			for b := 32; b < 40; b++ {
				blk := s.Block(b)
				eq(t, "NrVmemmap", blk.NrVmemmap, tc.nv)
				eq(t, "altmap", blk.Altmap != nil, tc.altmap)
				if tc.altmap {
					eq(t, "altmap base", blk.Altmap.BasePfn, p.BlockStart(b))
					eq(t, "frame", s.VmemmapAt(p.VmemmapPage(p.BlockStart(b))).Frame, p.BlockStart(b))
				} else {
					eq(t, "buddy", s.VmemmapAt(p.VmemmapPage(p.BlockStart(b))).Src, mcheck.SrcBuddy)
				}
			}
			do(t, m, "remove_memory block=32 nr=8", 0)
			s = m.Snapshot()
			eq(t, "leaks", s.AltmapLeaks, 0)
			eq(t, "bad", s.BadFrees, 0)
			eq(t, "blocks", len(s.Blocks), p.BootBlocks)
		})
	}
	// 6.1 single block: nr_vmemmap_pages = altmap.alloc, no altmap in the snapshot.
	p := prof(t, "x86_64-4k", "6.1", mcheck.ModeOn)
	m := newM(t, p)
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", 0)
	s := m.Snapshot()
	eq(t, "P2 NrVmemmap", s.Block(32).NrVmemmap, 512)
	eq(t, "P2 altmap hidden", s.Block(32).Altmap == nil, true)
	do(t, m, "remove_memory block=32 nr=1", 0)
	eq(t, "P2 bad frees", m.Snapshot().BadFrees, 0)
}

func TestRemoveGranularity(t *testing.T) {
	p := prof(t, "x86_64-4k", "6.12", mcheck.ModeOn)
	m := newM(t, p)
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", 0)
	do(t, m, "add_memory block=33 nr=1 memmap_on_memory=0", 0)
	do(t, m, "remove_memory block=32 nr=2", mcheck.EINVAL) // some with altmap
	do(t, m, "remove_memory block=31 nr=2", mcheck.EINVAL) // a missing block
	do(t, m, "online block=32 type=auto", 0)
	do(t, m, "remove_memory block=32 nr=1", mcheck.EBUSY)
	do(t, m, "remove_memory block=0 nr=0", mcheck.EINVAL)
	do(t, m, "remove_memory block=40 nr=1", 0) // nothing there
	do(t, m, "memremap subsection=2560 nr=1 reserve=0 free=0", 0)
	do(t, m, "remove_memory block=40 nr=1", mcheck.EINVAL) // overlaps a pgmap
	do(t, m, "add_memory block=40 nr=1 memmap_on_memory=0", mcheck.EEXIST)
	do(t, m, "add_memory block=47 nr=2 memmap_on_memory=0", mcheck.E2BIG)
	do(t, m, "add_memory block=0 nr=1 memmap_on_memory=0", mcheck.EEXIST)
	do(t, m, "memremap subsection=0 nr=1 reserve=0 free=0", mcheck.ENXIO)
	do(t, m, "memremap subsection=2112 nr=1 reserve=0 free=0", mcheck.ENXIO) // block 33
	do(t, m, "memremap subsection=2560 nr=1 reserve=0 free=0", mcheck.ENOMEM)
}

// ---------------------------------------------------------------------------------------------
// Error paths: a failed op changes nothing but Pending and pageblocks.

func TestFailNextLeavesNoTrace(t *testing.T) {
	type step struct {
		setup []string
		fault string
		op    string
		want  mcheck.Errno
	}
	for _, pn := range []string{"x86_64-4k", "arm64-4k", "ppc64-64k", "tiny-x86", "tiny-ppc", "tiny-arm64"} {
		p, _ := mcheck.LookupProfile(pn)
		B := p.HotplugStart
		bs := func(s string) string { return strings.ReplaceAll(s, "B", itoa(B)) }
		cases := []step{
			{nil, "usage", "add_memory block=B nr=1 memmap_on_memory=1", mcheck.ENOMEM},
			{nil, "usage", "add_memory block=B nr=2 memmap_on_memory=0", mcheck.ENOMEM},
			{nil, "vmemmap", "add_memory block=B nr=1 memmap_on_memory=1", mcheck.ENOMEM},
			{nil, "block_device", "add_memory block=B nr=1 memmap_on_memory=1", mcheck.ENOMEM},
			{nil, "block_device", "add_memory block=B nr=2 memmap_on_memory=0", mcheck.ENOMEM},
			{[]string{"add_memory block=B nr=1 memmap_on_memory=1"}, "notifier", "online block=B type=movable", mcheck.EPERM},
			{[]string{"add_memory block=B nr=1 memmap_on_memory=0"}, "notifier", "online block=B type=kernel", mcheck.EPERM},
			{[]string{"add_memory block=B nr=1 memmap_on_memory=1", "online block=B type=kernel"}, "notifier", "offline block=B", mcheck.EPERM},
		}
		for _, c := range cases {
			if c.fault == "vmemmap" && p.Populate == mcheck.PopulatePPCRadix {
				continue // ppc falls back to the buddy when the altmap allocation fails
			}
			m := newM(t, p)
			for _, l := range c.setup {
				do(t, m, bs(l), 0)
			}
			before := m.Snapshot()
			do(t, m, "fail_next kind="+c.fault, 0)
			do(t, m, bs(c.op), c.want)
			after := m.Snapshot()
			eq(t, pn+" "+c.op+": pending consumed", after.Pending, mcheck.FaultNone)
			sameExcept(t, pn+" "+c.fault+" "+c.op, before, after)
		}
		// a fault that is not reached stays armed
		m := newM(t, p)
		do(t, m, "fail_next kind=notifier", 0)
		do(t, m, bs("add_memory block=B nr=1 memmap_on_memory=0"), 0)
		eq(t, "still armed", m.Snapshot().Pending, mcheck.FaultNotifier)
	}
}

func TestVmemmapFaultWithoutAltmapFallsBack(t *testing.T) {
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn)
	m := newM(t, p)
	do(t, m, "fail_next kind=vmemmap", 0)
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=0", 0) // PMD failed: base pages
	r := m.Snapshot().VmemmapAt(p.VmemmapPage(p.BlockStart(32)))
	eq(t, "base pages", [2]int{int(r.Src), int(r.Size)}, [2]int{int(mcheck.SrcBuddy), int(mcheck.MapBase)})
	do(t, m, "remove_memory block=32 nr=1", 0)
	eq(t, "unmapped", m.Snapshot().VmemmapAt(p.VmemmapPage(p.BlockStart(32))).Src, mcheck.SrcUnmapped)
}

func TestAddPagesLeak(t *testing.T) {
	// __add_pages stops at the first failing section without rolling back earlier chunks.
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn)
	m := newM(t, p)
	do(t, m, "memremap subsection=2117 nr=1 reserve=0 free=0", 0) // inside section 33
	// [section 32, section 33 + 10 subsections): neither end inside the pgmap; section 33 -> EEXIST
	do(t, m, "memremap subsection=2048 nr=74 reserve=0 free=0", mcheck.EEXIST)
	s := m.Snapshot()
	eq(t, "one pgmap", len(s.Pgmaps), 1)
	eq(t, "leaked section word", s.Sections[32].Flags, uint8(mcheck.SectionMarkedPresent|mcheck.SectionHasMemMap))
	eq(t, "leaked pages", s.PageAt(p.BlockStart(32)), mcheck.PageRun{Start: p.BlockStart(32), N: 32768, State: mcheck.PagePoisoned})
	eq(t, "leaked memmap", s.VmemmapAt(p.VmemmapPage(p.BlockStart(32))).Src, mcheck.SrcBuddy)
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=0", mcheck.EEXIST) // the leak blocks re-adds
	do(t, m, "remove_memory block=32 nr=1", 0)                             // ... until removed
	eq(t, "cleaned", m.Snapshot().Sections[32], mcheck.SectionSnap{})
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", 0)

	// P4 per-block add: block 33's __add_pages fails (a leaked section), block 32 is undone.
	m = newM(t, p)
	do(t, m, "memremap subsection=2178 nr=1 reserve=0 free=0", 0)
	do(t, m, "memremap subsection=2112 nr=70 reserve=0 free=0", mcheck.EEXIST) // leaks section 33
	do(t, m, "memunmap subsection=2178", 0)
	before := m.Snapshot()
	do(t, m, "add_memory block=32 nr=3 memmap_on_memory=1", mcheck.EEXIST)
	sameExcept(t, "undone per-block add", before, m.Snapshot())
	do(t, m, "remove_memory block=33 nr=1", 0)
	do(t, m, "add_memory block=32 nr=3 memmap_on_memory=1", 0)
	eq(t, "three blocks", len(m.Snapshot().Blocks), p.BootBlocks+3)
}

// ---------------------------------------------------------------------------------------------
// Named faults.

func TestFaultNames(t *testing.T) {
	for _, n := range FaultNames() {
		if FaultHelp(n) == "" {
			t.Fatalf("fault %s has no help", n)
		}
	}
	if _, err := New(prof(t, "tiny-x86", "", mcheck.ModeOn), "no-such-fault"); err == nil || !strings.Contains(err.Error(), "no-such-fault") {
		t.Fatalf("unknown fault: %v", err)
	}
}

func TestFaultHVOIgnoresSelfHosted(t *testing.T) {
	p := prof(t, "tiny-x86", "", mcheck.ModeOn) // 6.8, HVO on
	for _, inject := range []bool{false, true} {
		var f []string
		if inject {
			f = []string{"hvo-ignores-self-hosted"}
		}
		m := newM(t, p, f...)
		do(t, m, "add_memory block=1 nr=1 memmap_on_memory=1", 0)
		do(t, m, "online block=1 type=movable", 0)
		do(t, m, "hugetlb_alloc block=1", 0)
		r := do(t, m, "hugetlb_vmemmap_optimize block=1", 0)
		s := m.Snapshot()
		if !inject {
			eq(t, "skipped", r.Val, 0)
			eq(t, "bad frees", s.BadFrees, 0)
			continue
		}
		eq(t, "optimized", r.Val, 1)
		eq(t, "folio optimized", s.Folios[0].Optimized, true)
		eq(t, "bad frees (3 tail pages)", s.BadFrees, 3)
		head := p.VmemmapPage(s.Folios[0].Pfn)
		eq(t, "tail shared", s.VmemmapAt(head+1), mcheck.VmemmapRun{Start: head + 1, N: 1, Src: mcheck.SrcHVOShared, Size: mcheck.MapBase, Frame: head})
		eq(t, "head split to base", s.VmemmapAt(head).Size, mcheck.MapBase)
		do(t, m, "hugetlb_free block=1", 0)
		eq(t, "restored from buddy", m.Snapshot().VmemmapAt(head+1).Src, mcheck.SrcBuddy)
	}
}

func TestFaultRemoveDropsAltmap(t *testing.T) {
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn)
	m := newM(t, p, "remove-drops-altmap")
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", 0)
	do(t, m, "remove_memory block=32 nr=1", 0)
	s := m.Snapshot()
	eq(t, "bad frees (one PMD frame)", s.BadFrees, 1)
	eq(t, "altmap leaks", s.AltmapLeaks, 1)
	// without the fault: clean
	m = newM(t, p)
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", 0)
	do(t, m, "remove_memory block=32 nr=1", 0)
	eq(t, "clean", [2]int{m.Snapshot().BadFrees, m.Snapshot().AltmapLeaks}, [2]int{0, 0})
	// a non-altmap remove is unaffected by the fault
	m = newM(t, p, "remove-drops-altmap")
	do(t, m, "add_memory block=32 nr=1 memmap_on_memory=0", 0)
	do(t, m, "remove_memory block=32 nr=1", 0)
	eq(t, "unaffected", m.Snapshot().BadFrees, 0)
}

func TestFaultOnlineSkipsVmemmapPresent(t *testing.T) {
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn)
	m, _ := New(p, "online-skips-vmemmap-present")
	m.Apply(mcheck.Op{Kind: mcheck.OpAddMemory, Block: 32, Nr: 1, MMOM: true})
	m.Apply(mcheck.Op{Kind: mcheck.OpOnline, Block: 32, Type: mcheck.OnlineMovable})
	eq(t, "present", m.Snapshot().Zones[mcheck.ZoneMovable].Present, 32768-512)
	if c := m.Check(); len(c) == 0 || !strings.Contains(strings.Join(c, ";"), "present") {
		t.Fatalf("Check does not notice the present drift: %v", c)
	}
	m.Apply(mcheck.Op{Kind: mcheck.OpOffline, Block: 32})
	eq(t, "present after offline", m.Snapshot().Zones[mcheck.ZoneMovable].Present, -512)
	// without memmap_on_memory the fault is invisible
	m, _ = New(p, "online-skips-vmemmap-present")
	m.Apply(mcheck.Op{Kind: mcheck.OpAddMemory, Block: 32, Nr: 1})
	m.Apply(mcheck.Op{Kind: mcheck.OpOnline, Block: 32, Type: mcheck.OnlineMovable})
	eq(t, "present w/o mmom", m.Snapshot().Zones[mcheck.ZoneMovable].Present, 32768)
	eq(t, "check", len(m.Check()), 0)
}

// ---------------------------------------------------------------------------------------------
// Clone and fingerprint.

func TestCloneIndependence(t *testing.T) {
	for _, pn := range []string{"tiny-x86", "tiny-ppc", "tiny-arm64", "x86_64-4k"} {
		p, _ := mcheck.LookupProfile(pn)
		r := rand.New(rand.NewSource(1))
		m := newM(t, p)
		for i := 0; i < 400; i++ {
			m.Apply(randomOp(r, &p))
			fp, snap := m.Fingerprint(), m.Snapshot()
			c := m.Clone().(*Machine)
			eq(t, "clone fingerprint", c.Fingerprint(), fp)
			for j := 0; j < 5; j++ {
				c.Apply(randomOp(r, &p))
			}
			eq(t, pn+": original fingerprint after mutating the clone", m.Fingerprint(), fp)
			if d := mcheck.Diff(snap, m.Snapshot(), "before", "after", 5); len(d) > 0 {
				t.Fatalf("%s: mutating a clone changed the original: %v", pn, d)
			}
		}
	}
}

func TestFingerprintCanonical(t *testing.T) {
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn)
	a, b := newM(t, p), newM(t, p)
	for _, l := range []string{"add_memory block=32 nr=1 memmap_on_memory=1", "add_memory block=34 nr=1 memmap_on_memory=0",
		"online block=32 type=kernel", "pin block=32", "pin block=32", "memremap subsection=2240 nr=3 reserve=8 free=64"} {
		do(t, a, l, 0)
	}
	for _, l := range []string{"memremap subsection=2240 nr=3 reserve=8 free=64", "add_memory block=34 nr=1 memmap_on_memory=0",
		"add_memory block=32 nr=1 memmap_on_memory=1", "online block=32 type=kernel", "pin block=32", "pin block=32",
		"unpin block=32", "pin block=32", "add_memory block=36 nr=1 memmap_on_memory=1", "remove_memory block=36 nr=1",
		"hugetlb_alloc block=32", "hugetlb_free block=32"} {
		do(t, b, l, 0)
	}
	if d := mcheck.Diff(a.Snapshot(), b.Snapshot(), "a", "b", 5); len(d) > 0 {
		t.Fatalf("states differ: %v", d)
	}
	eq(t, "fingerprints of equal states", a.Fingerprint(), b.Fingerprint())
	do(t, b, "pin block=32", 0)
	if a.Fingerprint() == b.Fingerprint() {
		t.Fatal("different states, same fingerprint")
	}
	// Random walks: equal snapshots -> equal fingerprints, via Snapshot.Hash as the oracle.
	for _, pn := range []string{"tiny-x86", "tiny-ppc", "tiny-arm64"} {
		p, _ := mcheck.LookupProfile(pn)
		byHash := map[uint64]uint64{}
		r := rand.New(rand.NewSource(7))
		for w := 0; w < 200; w++ {
			m := newM(t, p)
			for i := 0; i < 12; i++ {
				m.Apply(randomOp(r, &p))
				h, fp := m.Snapshot().Hash(), m.Fingerprint()
				if old, ok := byHash[h]; ok && old != fp {
					t.Fatalf("%s: equal snapshots with different fingerprints", pn)
				}
				byHash[h] = fp
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Random ops (shared by tests and benchmarks).

func randomOp(r *rand.Rand, p *mcheck.Profile) mcheck.Op {
	nb := p.NrBlocks()
	blk := func() int {
		if r.Intn(8) == 0 {
			return r.Intn(nb + 1)
		}
		return p.HotplugStart + r.Intn(p.HotplugBlocks)
	}
	spb := p.BlockPages() / p.PagesPerSubsection()
	o := mcheck.Op{Kind: mcheck.OpKind(r.Intn(int(mcheck.NrOpKinds)))}
	switch o.Kind {
	case mcheck.OpAddMemory:
		o.Block, o.Nr, o.MMOM = blk(), 1+r.Intn(2)*r.Intn(3), r.Intn(3) > 0
	case mcheck.OpRemoveMemory:
		o.Block, o.Nr = blk(), 1+r.Intn(2)*r.Intn(3)
	case mcheck.OpOnline:
		o.Block, o.Type = blk(), mcheck.OnlineType(r.Intn(3))
	case mcheck.OpOffline, mcheck.OpPin, mcheck.OpUnpin, mcheck.OpHugetlbAlloc, mcheck.OpHugetlbOptimize, mcheck.OpHugetlbFree:
		o.Block = blk()
	case mcheck.OpMemremap, mcheck.OpMemunmap:
		o.Subsection = blk()*spb + r.Intn(spb)
		o.Nr = 1 + r.Intn(spb)
		if r.Intn(2) == 0 {
			o.Free = r.Intn(o.Nr*p.PagesPerSubsection()/4 + 1)
			o.Reserve = r.Intn(p.PagesPerSubsection())
		}
	case mcheck.OpAllocContig:
		o.Pfn = blk()*p.BlockPages() + r.Intn(p.BlockPages())
		o.Nr = 1 + r.Intn(p.BlockPages())
	case mcheck.OpFailNext:
		o.Fault = mcheck.FaultKind(1 + r.Intn(4))
	case mcheck.OpPfnValid, mcheck.OpPfnToOnlinePage:
		o.Pfn = r.Intn(p.NrPfns())
	}
	return o
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestRandomSelfConsistency(t *testing.T) {
	for _, pn := range mcheck.ProfileNames() {
		p, _ := mcheck.LookupProfile(pn)
		r := rand.New(rand.NewSource(3))
		m := newM(t, p)
		n := 3000
		if !p.Scaled {
			n = 600
		}
		for i := 0; i < n; i++ {
			op := randomOp(r, &p)
			m.Apply(op)
			if c := m.Check(); c != nil {
				t.Fatalf("%s step %d %s: %v", pn, i, op, c)
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Benchmarks.

func BenchmarkImplRandomMix(b *testing.B) {
	base, _ := mcheck.LookupProfile("x86_64-4k")
	n := 64
	p, err := base.WithOverrides(mcheck.Overrides{Blocks: &n})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewSource(42))
	ops := make([]mcheck.Op, 1<<14)
	for i := range ops {
		ops[i] = randomOp(r, &p)
	}
	m, _ := New(p)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i&(1<<14-1) == 0 && i > 0 {
			m, _ = New(p) // keep the state from drifting into "everything full"
		}
		m.Apply(ops[i&(1<<14-1)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkCloneFingerprint(b *testing.B) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	m, _ := New(p)
	for _, l := range []string{"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=kernel", "pin block=1",
		"hugetlb_alloc block=1", "memremap subsection=9 nr=2 reserve=0 free=8"} {
		op, _ := mcheck.ParseOp(l)
		m.Apply(op)
	}
	b.ResetTimer()
	var x uint64
	for i := 0; i < b.N; i++ {
		x ^= m.Clone().Fingerprint()
	}
	_ = x
}

func BenchmarkSnapshotX86(b *testing.B) {
	base, _ := mcheck.LookupProfile("x86_64-4k")
	n := 64
	p, _ := base.WithOverrides(mcheck.Overrides{Blocks: &n})
	m, _ := New(p)
	r := rand.New(rand.NewSource(5))
	for i := 0; i < 2000; i++ {
		m.Apply(randomOp(r, &p))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Snapshot()
	}
}

func BenchmarkClone(b *testing.B) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	m, _ := New(p)
	for _, l := range []string{"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=kernel", "pin block=1",
		"hugetlb_alloc block=1", "memremap subsection=9 nr=2 reserve=0 free=8"} {
		op, _ := mcheck.ParseOp(l)
		m.Apply(op)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Clone()
	}
}

func BenchmarkFingerprint(b *testing.B) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	m, _ := New(p)
	for _, l := range []string{"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=kernel", "pin block=1",
		"hugetlb_alloc block=1", "memremap subsection=9 nr=2 reserve=0 free=8"} {
		op, _ := mcheck.ParseOp(l)
		m.Apply(op)
	}
	b.ResetTimer()
	var x uint64
	for i := 0; i < b.N; i++ {
		x += m.Fingerprint()
	}
	_ = x
}

// TestCheckDetects corrupts the internal state and expects Check to notice.
func TestCheckDetects(t *testing.T) {
	p := prof(t, "x86_64-4k", "", mcheck.ModeOn)
	setup := func() *Machine {
		m := newM(t, p)
		do(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", 0)
		do(t, m, "online block=32 type=kernel", 0)
		return m
	}
	for _, tc := range []struct {
		what    string
		corrupt func(m *Machine)
		want    string
	}{
		{"zone present", func(m *Machine) { m.zones[mcheck.ZoneNormal].present++ }, "present"},
		{"section flags", func(m *Machine) { m.secs[33].flags = fOnline }, "section 33"},
		{"altmap alloc", func(m *Machine) { m.blocks[32].alt.alloc-- }, "alloc=511"},
		{"subsection map", func(m *Machine) { m.secs[32].submap.ClearRange(3, 4) }, "not full"},
		{"vmemmap", func(m *Machine) { m.units[32] = unit{} }, "not mapped"},
		{"read after free", func(m *Machine) {
			m.units[32] = unit{}
			m.Apply(mcheck.Op{Kind: mcheck.OpAllocContig, Pfn: p.BlockStart(32) + 4096, Nr: 1})
		}, "read after its vmemmap frame was freed"},
	} {
		m := setup()
		tc.corrupt(m)
		c := strings.Join(m.Check(), "; ")
		if !strings.Contains(c, tc.want) {
			t.Errorf("%s: Check() = %q, want a report containing %q", tc.what, c, tc.want)
		}
	}
}
