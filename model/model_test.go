package model

import (
	"testing"

	"github.com/mcheck/mcheck"
)

func prof(t *testing.T, name, kernel string, mode mcheck.Mode) mcheck.Profile {
	t.Helper()
	p, err := mcheck.LookupProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := mcheck.ParseKernel(kernel)
	if err != nil {
		t.Fatal(err)
	}
	p, err = p.WithOverrides(mcheck.Overrides{Kernel: &k, Mode: &mode})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func apply(t *testing.T, m *Machine, line string, want mcheck.Errno) mcheck.Result {
	t.Helper()
	op, err := mcheck.ParseOp(line)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Apply(op)
	if r.Errno != want {
		t.Fatalf("%s: got %s, want %s", line, r.Errno, want)
	}
	return r
}

// The worked example of kernel-semantics.md §7: x86_64 4K, 128 MiB block, memmap_on_memory.
func TestX86WorkedExample(t *testing.T) {
	m := New(prof(t, "x86_64-4k", "6.12", mcheck.ModeOn))
	apply(t, m, "add_memory block=32 nr=1 memmap_on_memory=1", mcheck.OK)
	s := m.Snapshot()
	b := s.Block(32)
	if b == nil || b.NrVmemmap != 512 || b.Altmap == nil || b.Altmap.Alloc != 512 || b.Altmap.Align != 0 || b.Altmap.Free != 512 {
		t.Fatalf("block after add: %+v altmap %s", b, mcheck.FmtAltmap(b.Altmap))
	}
	start := 32 * 32768
	v := s.VmemmapAt(m.p.VmemmapPage(start))
	if v.Src != mcheck.SrcAltmap || v.Size != mcheck.MapPMD || v.Frame != start {
		t.Fatalf("memmap of the block: %+v", v)
	}
	apply(t, m, "online block=32 type=movable", mcheck.OK)
	s = m.Snapshot()
	z := s.Zones[mcheck.ZoneMovable]
	if z.Present != 32768 || z.Managed != 32768-512 || z.End-z.Start != 32768 {
		t.Fatalf("movable after online: %+v", z)
	}
	if r := s.PageAt(start); r.State != mcheck.PageSelfHosted || r.N != 512 {
		t.Fatalf("set-aside: %+v", r)
	}
	apply(t, m, "offline block=32", mcheck.OK)
	if z := m.Snapshot().Zones[mcheck.ZoneMovable]; z != (mcheck.ZoneSnap{}) {
		t.Fatalf("movable after offline: %+v", z)
	}
	apply(t, m, "remove_memory block=32 nr=1", mcheck.OK)
	s = m.Snapshot()
	if s.Block(32) != nil || s.Sections[32].Flags != 0 || s.BadFrees != 0 || s.AltmapLeaks != 0 {
		t.Fatalf("after remove: block %v section %s bad %d leaks %d", s.Block(32), mcheck.FmtSection(s.Sections[32]), s.BadFrees, s.AltmapLeaks)
	}
	if v := s.VmemmapAt(m.p.VmemmapPage(start)); v.Src != mcheck.SrcUnmapped {
		t.Fatalf("vmemmap still mapped: %+v", v)
	}
}

func TestPPCForce(t *testing.T) {
	m := New(prof(t, "ppc64-64k", "6.12", mcheck.ModeForce))
	apply(t, m, "add_memory block=8 nr=1 memmap_on_memory=1", mcheck.OK)
	b := m.Snapshot().Block(8)
	if b.NrVmemmap != 32 || b.Altmap.Alloc != 4 {
		t.Fatalf("ppc force: %+v %s", b, mcheck.FmtAltmap(b.Altmap))
	}
	apply(t, m, "online block=8 type=movable", mcheck.OK)
	z := m.Snapshot().Zones[mcheck.ZoneMovable]
	if z.Present != 4096 || z.Managed != 4096-32 {
		t.Fatalf("ppc zone %+v", z)
	}
	apply(t, m, "offline block=8", mcheck.OK)
	apply(t, m, "remove_memory block=8 nr=1", mcheck.OK)
	if s := m.Snapshot(); s.BadFrees != 0 || s.AltmapLeaks != 0 {
		t.Fatalf("ppc remove: bad %d leaks %d", s.BadFrees, s.AltmapLeaks)
	}
}

func TestMultiBlockByVersion(t *testing.T) {
	for _, c := range []struct {
		kernel string
		errno  mcheck.Errno
		nv     int
	}{{"6.1", mcheck.EINVAL, 0}, {"6.6", mcheck.OK, 0}, {"6.8", mcheck.OK, 512}} {
		m := New(prof(t, "x86_64-4k", c.kernel, mcheck.ModeOn))
		apply(t, m, "add_memory block=32 nr=8 memmap_on_memory=1", c.errno)
		if c.errno == mcheck.OK {
			if b := m.Snapshot().Block(35); b.NrVmemmap != c.nv {
				t.Errorf("%s: block 35 nr_vmemmap %d, want %d", c.kernel, b.NrVmemmap, c.nv)
			}
		}
	}
}

func TestFailedOpsLeaveNoTrace(t *testing.T) {
	p := prof(t, "tiny-x86", "6.8", mcheck.ModeOn)
	for _, c := range []struct {
		setup []string
		fault string
		op    string
		errno mcheck.Errno
	}{
		{nil, "usage", "add_memory block=1 nr=1 memmap_on_memory=1", mcheck.ENOMEM},
		{nil, "vmemmap", "add_memory block=1 nr=1 memmap_on_memory=1", mcheck.ENOMEM},
		{nil, "block_device", "add_memory block=1 nr=2 memmap_on_memory=1", mcheck.ENOMEM},
		{nil, "block_device", "add_memory block=1 nr=2 memmap_on_memory=0", mcheck.ENOMEM},
		{[]string{"add_memory block=1 nr=1 memmap_on_memory=1"}, "notifier", "online block=1 type=movable", mcheck.EPERM},
		{[]string{"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=kernel"}, "notifier", "offline block=1", mcheck.EPERM},
	} {
		m := New(p)
		for _, s := range c.setup {
			apply(t, m, s, mcheck.OK)
		}
		before := m.Snapshot()
		apply(t, m, "fail_next kind="+c.fault, mcheck.OK)
		apply(t, m, c.op, c.errno)
		after := m.Snapshot()
		after.Pageblocks = before.Pageblocks
		if d := mcheck.Diff(before, after, "before", "after", 0); len(d) > 0 {
			t.Errorf("%s after fail_next %s changed state:\n%v", c.op, c.fault, d)
		}
	}
}
