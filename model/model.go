// Package model is the reference specification of the memory-hotplug machine: the kernel's rules
// written as plainly as possible, with state kept per page frame and per vmemmap page. It is the
// judge the bitmap implementation (impl/) is compared against, so clarity beats speed here. The
// exact rules are in docs/semantics.md; each function names the kernel code it follows.
package model

import (
	"github.com/mcheck/mcheck"
)

// altmap is a struct vmem_altmap (include/linux/memremap.h).
type altmap struct {
	base, end                   int // end inclusive
	reserve, free, align, alloc int
}

// block is a struct memory_block (drivers/base/memory.c).
type block struct {
	state     mcheck.BlockState
	zone      mcheck.ZoneID
	boot      bool
	nrVmemmap int     // nr_vmemmap(B)
	altmap    *altmap // 6.6+: B.altmap
}

// section is a struct mem_section.
type section struct {
	flags     uint8
	usage     bool
	bootUsage bool // allocated at boot: never freed
	sub       mcheck.SubsectionMap
}

// vpage is one page of the virtual memmap and what backs it.
type vpage struct {
	src    mcheck.FrameSource
	size   mcheck.MapSize
	frame  int32 // altmap frame pfn, or the head vmemmap page for SrcHVOShared
	altmap int32 // base pfn of the altmap the frame came from
}

type zone struct {
	present, managed int
	start, end       int
}

type folio struct {
	pfn       int
	optimized bool
}

type pgmap struct {
	start, n int
	altmap   *altmap
}

// Machine is the reference model.
type Machine struct {
	p *mcheck.Profile

	sec     []section
	page    []mcheck.PageState // per pfn
	pzone   []mcheck.ZoneID    // per pfn: zone of an initialized page
	mt      []mcheck.Migratetype
	vm      []vpage  // per vmemmap page (rounded up to whole PMDs)
	blocks  []*block // per block id; nil = no device
	busy    []bool   // per block id: a System RAM resource covers it
	zones   [mcheck.NrZones]zone
	folios  []folio // ascending pfn
	pgmaps  []*pgmap
	pending mcheck.FaultKind

	badFrees, altmapLeaks int

	snap *mcheck.Snapshot // cached rendering of the current state; dropped by Apply
}

// New builds the initial state of profile p: boot memory online in DMA32, nothing hot-added.
func New(p mcheck.Profile) *Machine {
	m := &Machine{p: &p}
	nrPfns := p.NrPfns()
	m.sec = make([]section, p.NrSections())
	m.page = make([]mcheck.PageState, nrPfns)
	m.pzone = make([]mcheck.ZoneID, nrPfns)
	m.mt = make([]mcheck.Migratetype, nrPfns/p.PageblockPages())
	nv := p.VmemmapPage(nrPfns-1) + 1
	nv = (nv + p.PMDPages() - 1) / p.PMDPages() * p.PMDPages()
	m.vm = make([]vpage, nv)
	m.blocks = make([]*block, p.NrBlocks())
	m.busy = make([]bool, p.NrBlocks())

	// sparse_init / memmap_init: early sections with a boot usage; RAM subsections set.
	bootEnd, ramEnd := p.BootPfns(), p.BootRAMPfns()
	for s := 0; s < bootEnd/p.PagesPerSection(); s++ {
		m.sec[s] = section{flags: mcheck.SectionMarkedPresent | mcheck.SectionHasMemMap |
			mcheck.SectionIsOnline | mcheck.SectionIsEarly, usage: true, bootUsage: true}
	}
	for pfn := 0; pfn < bootEnd; pfn++ {
		if pfn < ramEnd {
			i := p.SubsectionIndex(pfn)
			m.sec[p.SectionOf(pfn)].sub.SetRange(i, i+1)
			m.page[pfn], m.pzone[pfn] = mcheck.PageBoot, mcheck.ZoneDMA32
		} else {
			m.page[pfn] = mcheck.PageHole
		}
	}
	for pb := 0; pb < bootEnd/p.PageblockPages(); pb++ {
		m.mt[pb] = mcheck.MTMovable
	}
	// The boot memmap (sparse_init -> vmemmap_populate without an altmap): x86/arm64 map a whole
	// section's memmap with PMDs when it is a whole number of PMDs; ppc radix always tries a PMD.
	size := mcheck.MapBase
	secMemmap := p.PagesPerSection() * p.StructPageBytes
	if p.HugeVmemmap && (p.Populate == mcheck.PopulatePPCRadix || secMemmap%(p.PMDPages()*p.PageBytes()) == 0) {
		size = mcheck.MapPMD
	}
	vEnd := p.VmemmapPage(bootEnd-1) + 1
	if size == mcheck.MapPMD {
		vEnd = (vEnd + p.PMDPages() - 1) / p.PMDPages() * p.PMDPages()
	}
	for v := 0; v < vEnd; v++ {
		m.vm[v] = vpage{src: mcheck.SrcBoot, size: size}
	}
	for b := 0; b < p.BootBlocks; b++ {
		m.blocks[b] = &block{state: mcheck.BlockOnline, zone: mcheck.ZoneDMA32, boot: true}
		m.busy[b] = true
	}
	m.zones[mcheck.ZoneDMA32] = zone{present: ramEnd, managed: ramEnd, start: 0, end: ramEnd}
	return m
}

// Clone is a deep copy (altmaps shared by a block or pgmap are copied with it).
func (m *Machine) Clone() mcheck.Machine {
	c := *m
	c.sec = append([]section(nil), m.sec...)
	c.page = append([]mcheck.PageState(nil), m.page...)
	c.pzone = append([]mcheck.ZoneID(nil), m.pzone...)
	c.mt = append([]mcheck.Migratetype(nil), m.mt...)
	c.vm = append([]vpage(nil), m.vm...)
	c.busy = append([]bool(nil), m.busy...)
	c.folios = append([]folio(nil), m.folios...)
	c.blocks = make([]*block, len(m.blocks))
	for i, b := range m.blocks {
		if b != nil {
			nb := *b
			if b.altmap != nil {
				a := *b.altmap
				nb.altmap = &a
			}
			c.blocks[i] = &nb
		}
	}
	c.pgmaps = nil
	for _, g := range m.pgmaps {
		ng := *g
		if g.altmap != nil {
			a := *g.altmap
			ng.altmap = &a
		}
		c.pgmaps = append(c.pgmaps, &ng)
	}
	return &c
}

// Fingerprint hashes the canonical snapshot: the model keeps no state that the snapshot omits.
func (m *Machine) Fingerprint() uint64 { return m.Snapshot().Hash() }

// Snapshot renders the observable state (cached until the next Apply; callers must not modify it).
func (m *Machine) Snapshot() *mcheck.Snapshot {
	if m.snap == nil {
		m.snap = m.render()
	}
	return m.snap
}

// Check has nothing to report: the model is the reference, judged by the invariants.
func (m *Machine) Check() []string { return nil }

func snapAltmap(a *altmap) *mcheck.AltmapSnap {
	if a == nil {
		return nil
	}
	return &mcheck.AltmapSnap{BasePfn: a.base, EndPfn: a.end, Reserve: a.reserve, Free: a.free, Align: a.align, Alloc: a.alloc}
}

func (m *Machine) render() *mcheck.Snapshot {
	s := &mcheck.Snapshot{Pending: m.pending, BadFrees: m.badFrees, AltmapLeaks: m.altmapLeaks,
		Sections: make([]mcheck.SectionSnap, 0, len(m.sec)), Pages: make([]mcheck.PageRun, 0, 16),
		Pageblocks: make([]mcheck.PageblockRun, 0, 8), Vmemmap: make([]mcheck.VmemmapRun, 0, 8)}
	for id, b := range m.blocks {
		if b == nil {
			continue
		}
		s.Blocks = append(s.Blocks, mcheck.BlockSnap{ID: id, State: b.state, Zone: b.zone, Boot: b.boot,
			NrVmemmap: b.nrVmemmap, Altmap: snapAltmap(b.altmap)})
	}
	for _, x := range m.sec {
		sub := x.sub
		if !x.usage {
			sub = mcheck.SubsectionMap{}
		}
		s.Sections = append(s.Sections, mcheck.SectionSnap{Flags: x.flags, Usage: x.usage, SubMap: sub})
	}
	for z := range m.zones {
		zz := m.zones[z]
		s.Zones[z] = mcheck.ZoneSnap{Present: zz.present, Managed: zz.managed, Start: zz.start, End: zz.end}
	}
	rb := mcheck.NewRunBuilder(s)
	for pfn := range m.page {
		rb.Pages(pfn, 1, m.page[pfn], m.pzone[pfn])
	}
	for i := range m.mt {
		mt := m.mt[i]
		if !m.sec[i*m.p.PageblockPages()>>m.p.SectionShift].usage {
			mt = mcheck.MTNone
		}
		rb.Pageblocks(i, 1, mt)
	}
	for v, x := range m.vm {
		rb.Vmemmap(v, 1, x.src, x.size, int(x.frame), int(x.altmap))
	}
	for _, f := range m.folios {
		s.Folios = append(s.Folios, mcheck.Folio{Pfn: f.pfn, Optimized: f.optimized})
	}
	for _, g := range m.pgmaps {
		s.Pgmaps = append(s.Pgmaps, mcheck.PgmapSnap{Start: g.start, N: g.n, Altmap: snapAltmap(g.altmap)})
	}
	return s
}

// fault consumes an armed fail_next of kind k.
func (m *Machine) fault(k mcheck.FaultKind) bool {
	if m.pending == k {
		m.pending = mcheck.FaultNone
		return true
	}
	return false
}
