package invariant

import (
	"github.com/mcheck/mcheck"
)

func init() {
	Catalogue = []Info{
		{ID: "INV-1", Title: "section word shape", Checked: true, check: inv1},
		{ID: "INV-2", Title: "usage and subsection map; pfn_valid answers", Checked: true, check: inv2, trans: inv2t},
		{ID: "INV-3", Title: "memmap backing of valid pfns", Checked: true, check: inv3},
		{ID: "INV-4", Title: "subsection exactness of adds and removes", Checked: true, trans: inv4},
		{ID: "INV-5", Title: "early sections keep their boot memmap", Checked: true, check: inv5, trans: inv5t},
		{ID: "INV-6", Title: "altmap arithmetic", Checked: true, check: inv6},
		{ID: "INV-7", Title: "altmap balance and release path", Checked: true, check: inv7, trans: inv7t},
		{ID: "INV-8", Title: "memmap_on_memory containment", Checked: true, check: inv8},
		{ID: "INV-9", Title: "set-aside shape", Checked: true, check: inv9},
		{ID: "INV-10", Title: "self-hosted pages are inert", Checked: true, check: inv10},
		{ID: "INV-11", Title: "zone present/managed accounting", Checked: true, check: inv11},
		{ID: "INV-12", Title: "block/section online agreement", Checked: true, check: inv12},
		{ID: "INV-13", Title: "block/zone agreement", Checked: true, check: inv13},
		{ID: "INV-14", Title: "block existence", Checked: true, check: inv14},
		{ID: "INV-15", Title: "remove preconditions", Checked: true, trans: inv15},
		{ID: "INV-16", Title: "remove postconditions", Checked: true, trans: inv16},
		{ID: "INV-17", Title: "no live page without its memmap", Checked: true, check: inv17},
		{ID: "INV-18", Title: "HVO never touches self-hosted vmemmap", Checked: true, check: inv18},
		{ID: "INV-19", Title: "online/offline ranges", Checked: true, trans: inv19},
		{ID: "INV-20", Title: "online hands the whole range to the buddy", Checked: true, trans: inv20},
		{ID: "INV-21", Title: "isolation bookkeeping", Checked: true, check: inv21, trans: inv21t},
		{ID: "INV-22", Title: "failure atomicity", Checked: true, trans: inv22},
		{ID: "INV-23", Title: "ZONE_DEVICE taint and pfn_to_online_page", Checked: true, check: inv23, trans: inv23t},
		{ID: "INV-24", Title: "vmemmap mapping granularity", Checked: true, check: inv24},
		{ID: "INV-25", Title: "hotplug lock around every mutation", Checked: false,
			Why: "needs a concurrent harness: every op of the alphabet runs atomically"},
	}
}

// --- helpers over snapshots -------------------------------------------------------------------

func (c *ctx) isBootSection(nr int) bool { return nr < c.p.BootBlocks*c.p.SectionsPerBlock }

// PfnValid is pfn_valid() computed from a snapshot (include/linux/mmzone.h).
func PfnValid(p *mcheck.Profile, s *mcheck.Snapshot, pfn int) bool {
	if pfn < 0 || pfn >= p.NrPfns() {
		return false
	}
	x := s.Sections[p.SectionOf(pfn)]
	if x.Flags&mcheck.SectionHasMemMap == 0 {
		return false
	}
	return x.Flags&mcheck.SectionIsEarly != 0 || (x.Usage && x.SubMap.Test(p.SubsectionIndex(pfn)))
}

// OnlinePage is pfn_to_online_page() != NULL computed from a snapshot (mm/memory_hotplug.c).
func OnlinePage(p *mcheck.Profile, s *mcheck.Snapshot, pfn int) bool {
	if pfn < 0 || pfn >= p.NrPfns() {
		return false
	}
	x := s.Sections[p.SectionOf(pfn)]
	if x.Flags&mcheck.SectionIsOnline == 0 || !x.Usage || !x.SubMap.Test(p.SubsectionIndex(pfn)) {
		return false
	}
	if x.Flags&mcheck.SectionTaintZoneDevice != 0 {
		for _, g := range s.Pgmaps {
			if pfn >= g.Start && pfn < g.Start+g.N {
				return false
			}
		}
	}
	return true
}

// liveAltmaps maps altmap base pfns to the altmaps alive in s. P1/P2 blocks keep only
// nr_vmemmap_pages; their (transient) altmap is represented by its base and alloc.
func liveAltmaps(p *mcheck.Profile, s *mcheck.Snapshot) map[int]mcheck.AltmapSnap {
	out := map[int]mcheck.AltmapSnap{}
	bp := p.BlockPages()
	for _, b := range s.Blocks {
		switch {
		case b.Altmap != nil:
			out[b.Altmap.BasePfn] = *b.Altmap
		case b.NrVmemmap > 0:
			base := b.ID * bp
			out[base] = mcheck.AltmapSnap{BasePfn: base, EndPfn: base + bp - 1, Free: bp, Alloc: b.NrVmemmap}
		}
	}
	for _, g := range s.Pgmaps {
		if g.Altmap != nil {
			out[g.Altmap.BasePfn] = *g.Altmap
		}
	}
	return out
}

// liveAltmaps is liveAltmaps of the state after the op, computed once per check.
func (c *ctx) liveAltmaps() map[int]mcheck.AltmapSnap {
	if c.live == nil {
		c.live = liveAltmaps(c.p, c.next)
	}
	return c.live
}

func forPages(s *mcheck.Snapshot, a, end int, f func(r mcheck.PageRun) bool) {
	for _, r := range s.Pages {
		if r.Start+r.N <= a {
			continue
		}
		if r.Start >= end {
			return
		}
		if !f(r) {
			return
		}
	}
}

func hotplugBlocks(s *mcheck.Snapshot) []mcheck.BlockSnap {
	var out []mcheck.BlockSnap
	for _, b := range s.Blocks {
		if !b.Boot {
			out = append(out, b)
		}
	}
	return out
}

// --- the catalogue ----------------------------------------------------------------------------

// inv1 — INV-1 (section word shape, include/linux/mmzone.h): flags stay below
// SECTION_MAP_LAST_BIT so the early NID never aliases one; EARLY => PRESENT && HAS_MEM_MAP;
// HAS_MEM_MAP => PRESENT; ONLINE => HAS_MEM_MAP; TAINT => PRESENT; a zero word has no usage
// unless the usage was a boot allocation (sparse_init).
func inv1(c *ctx) {
	for nr, x := range c.next.Sections {
		f := x.Flags
		switch {
		case f>>mcheck.SectionMapLastBit != 0:
			c.fail("section %d: flag bits %#x beyond SECTION_MAP_LAST_BIT", nr, f)
		case f&mcheck.SectionIsEarly != 0 && f&(mcheck.SectionMarkedPresent|mcheck.SectionHasMemMap) != mcheck.SectionMarkedPresent|mcheck.SectionHasMemMap:
			c.fail("section %d: EARLY without PRESENT|HAS_MEM_MAP (%s)", nr, mcheck.FmtSection(x))
		case f&mcheck.SectionHasMemMap != 0 && f&mcheck.SectionMarkedPresent == 0:
			c.fail("section %d: HAS_MEM_MAP without PRESENT", nr)
		case f&mcheck.SectionIsOnline != 0 && f&mcheck.SectionHasMemMap == 0:
			c.fail("section %d: ONLINE without HAS_MEM_MAP", nr)
		case f&mcheck.SectionTaintZoneDevice != 0 && f&mcheck.SectionMarkedPresent == 0:
			c.fail("section %d: TAINT_ZONE_DEVICE on a section that is not present", nr)
		case f == 0 && x.Usage && !c.isBootSection(nr):
			c.fail("section %d: word is 0 but usage is still allocated", nr)
		}
	}
}

// inv2 — INV-2 (usage and subsection map, mm/sparse.c section_activate/section_deactivate):
// HAS_MEM_MAP => usage; for a non-early section HAS_MEM_MAP <=> subsection map non-empty; no bit
// beyond SUBSECTIONS_PER_SECTION. A pfn_valid query answers what the section state says.
func inv2(c *ctx) {
	nsub := c.p.SubsectionsPerSection()
	for nr, x := range c.next.Sections {
		has := x.Flags&mcheck.SectionHasMemMap != 0
		if has && !x.Usage {
			c.fail("section %d: HAS_MEM_MAP without a usage map", nr)
		}
		if x.Flags&mcheck.SectionIsEarly == 0 && has != !x.SubMap.IsZero() {
			c.fail("section %d: HAS_MEM_MAP=%v but subsection map %s", nr, has, x.SubMap)
		}
		if x.SubMap.AnyInRange(nsub, mcheck.MaxSubsections) {
			c.fail("section %d: subsection bits beyond %d", nr, nsub)
		}
	}
}

// inv2t — INV-2, transition part: a pfn_valid query answers what the section state says.
func inv2t(c *ctx) {
	if c.op != nil && c.op.Kind == mcheck.OpPfnValid && c.res.Errno == mcheck.OK {
		if want := b2i(PfnValid(c.p, c.next, c.op.Pfn)); c.res.Val != want {
			c.fail("pfn_valid(%#x) answered %d, the section state says %d", c.op.Pfn, c.res.Val, want)
		}
	}
}

// inv3 — INV-3 (memmap backing, mm/sparse-vmemmap.c): every byte of the struct page of a valid
// pfn is in a mapped vmemmap page whose frame is live: an altmap frame belongs to an altmap that
// still exists, and an HVO alias points at a mapped head page. Exception, the kernel's own: a
// section leaked by a failed __add_pages (no memory block, no pgmap: x86 add_pages only WARNs,
// arm64 and ppc do not roll back either) keeps a memmap whose frames came from the failed call's
// altmap. README lists this as a kernel behaviour mcheck tolerates; replay shows it.
func inv3(c *ctx) {
	p, s := c.p, c.next
	live := c.liveAltmaps()
	ppss := p.PagesPerSubsection()
	runs, ri := s.Vmemmap, 0
	for pfn := 0; pfn < p.NrPfns(); pfn += ppss {
		if !PfnValid(p, s, pfn) {
			continue
		}
		v0, v1 := p.VmemmapPage(pfn), (pfn+ppss)*p.StructPageBytes/p.PageBytes()
		if v1 == v0 {
			v1 = v0 + 1
		}
		// Walk the mapped runs covering [v0, v1); v0 never decreases, so the index only advances.
		for v := v0; v < v1; {
			for ri < len(runs) && runs[ri].Start+runs[ri].N <= v {
				ri++
			}
			if ri == len(runs) || runs[ri].Start > v {
				c.fail("pfn %#x is valid but vmemmap page %#x is unmapped", pfn, v)
				return
			}
			r := runs[ri]
			switch r.Src {
			case mcheck.SrcAltmap:
				if _, ok := live[r.Altmap]; !ok && !orphan(p, s, pfn) {
					c.fail("vmemmap page %#x (valid pfn %#x) is backed by frame %#x of altmap %#x, which no longer exists", v, pfn, r.Frame+v-r.Start, r.Altmap)
					return
				}
			case mcheck.SrcHVOShared:
				if s.VmemmapAt(r.Frame).Src == mcheck.SrcUnmapped {
					c.fail("vmemmap page %#x aliases head page %#x, which is unmapped", v, r.Frame)
					return
				}
			}
			v = r.Start + r.N
		}
	}
}

// orphan reports whether pfn's memmap was left behind by a failed __add_pages: its section is
// present, yet neither a memory block nor a pgmap covers the pfn.
func orphan(p *mcheck.Profile, s *mcheck.Snapshot, pfn int) bool {
	nr := p.SectionOf(pfn)
	if s.Sections[nr].Flags&mcheck.SectionMarkedPresent == 0 || s.Block(nr/p.SectionsPerBlock) != nil {
		return false
	}
	for _, g := range s.Pgmaps {
		if pfn >= g.Start && pfn < g.Start+g.N {
			return false
		}
	}
	return true
}

// opRange is the pfn range an add/remove/memremap/memunmap op targets.
func opRange(p *mcheck.Profile, prev *mcheck.Snapshot, op *mcheck.Op) (int, int, bool) {
	switch op.Kind {
	case mcheck.OpAddMemory, mcheck.OpRemoveMemory:
		return op.Block * p.BlockPages(), (op.Block + op.Nr) * p.BlockPages(), true
	case mcheck.OpMemremap:
		return op.Subsection * p.PagesPerSubsection(), (op.Subsection + op.Nr) * p.PagesPerSubsection(), true
	case mcheck.OpMemunmap:
		a := op.Subsection * p.PagesPerSubsection()
		for _, g := range prev.Pgmaps {
			if g.Start == a {
				return a, a + g.N, true
			}
		}
	}
	return 0, 0, false
}

// inv4 — INV-4 (subsection exactness, mm/sparse.c fill_subsection_map/clear_subsection_map): a
// successful add/memremap turns exactly the bits of its range from 0 to 1; a successful
// remove/memunmap clears the bits of every section chunk of its range that was fully populated and
// leaves a partly populated chunk alone (clear_subsection_map WARNs and returns: what the kernel
// does with what a failed __add_pages leaked); nothing else changes subsection bits.
func inv4(c *ctx) {
	if c.prev == nil || c.op == nil {
		return
	}
	p := c.p
	a, end, ranged := opRange(p, c.prev, c.op)
	if c.res.Errno != mcheck.OK {
		ranged = false
	}
	adding := c.op.Kind == mcheck.OpAddMemory || c.op.Kind == mcheck.OpMemremap
	removing := c.op.Kind == mcheck.OpRemoveMemory || c.op.Kind == mcheck.OpMemunmap
	ppss := p.PagesPerSubsection()
	for pfn := 0; pfn < p.NrPfns(); pfn += ppss {
		nr, i := p.SectionOf(pfn), p.SubsectionIndex(pfn)
		before := c.prev.Sections[nr].SubMap.Test(i)
		after := c.next.Sections[nr].SubMap.Test(i)
		in := ranged && pfn >= a && pfn < end
		switch {
		case in && adding && (before || !after):
			c.fail("%s: subsection at pfn %#x went %v -> %v, want 0 -> 1", c.op, pfn, before, after)
			return
		case in && removing && chunkWasFull(p, c.prev, pfn, a, end) && after:
			c.fail("%s: subsection at pfn %#x still set after removal", c.op, pfn)
			return
		case in && removing && !chunkWasFull(p, c.prev, pfn, a, end) && before != after:
			c.fail("%s: subsection at pfn %#x went %v -> %v although its section's part of the range was not fully populated (section_deactivate must leave it alone)", c.op, pfn, before, after)
			return
		case !in && before != after && c.res.Errno == mcheck.OK:
			c.fail("%s: subsection at pfn %#x outside the op's range went %v -> %v", c.op, pfn, before, after)
			return
		}
	}
}

// inv5 — INV-5 (early sections, mm/sparse.c section_deactivate/free_map_bootmem): the boot memmap
// of an early section is never partially freed: while EARLY, all its vmemmap pages stay mapped
// from boot memory; a section stops being early only with an empty subsection map.
func inv5(c *ctx) {
	p, s := c.p, c.next
	pps := p.PagesPerSection()
	for nr, x := range s.Sections {
		if x.Flags&mcheck.SectionIsEarly != 0 {
			v0, v1 := p.VmemmapPage(nr*pps), ((nr+1)*pps*p.StructPageBytes+p.PageBytes()-1)/p.PageBytes()
			for v := v0; v < v1; v++ {
				if src := s.VmemmapAt(v).Src; src != mcheck.SrcBoot {
					c.fail("early section %d: vmemmap page %#x is %s, not the boot memmap", nr, v, src)
					return
				}
			}
		}
	}
}

// inv5t — INV-5, transition part: a section stops being early only with an empty map.
func inv5t(c *ctx) {
	if c.prev == nil {
		return
	}
	for nr, x := range c.next.Sections {
		if x.Flags&mcheck.SectionIsEarly == 0 && c.prev.Sections[nr].Flags&mcheck.SectionIsEarly != 0 && !x.SubMap.IsZero() {
			c.fail("section %d stopped being early with subsections %s still populated", nr, x.SubMap)
		}
	}
}

// inv6 — INV-6 (altmap arithmetic, include/linux/memremap.h, mm/sparse-vmemmap.c
// altmap_alloc_block_buf): alloc, align >= 0; alloc + align <= free; reserve + free fits the
// range; every frame handed out lies in [base + reserve, base + reserve + free).
func inv6(c *ctx) {
	live := c.liveAltmaps()
	for _, a := range live {
		switch {
		case a.Alloc < 0 || a.Align < 0:
			c.fail("altmap %#x: negative counter (alloc %d, align %d)", a.BasePfn, a.Alloc, a.Align)
		case a.Alloc+a.Align > a.Free:
			c.fail("altmap %#x: alloc %d + align %d > free %d", a.BasePfn, a.Alloc, a.Align, a.Free)
		case a.Reserve+a.Free > a.EndPfn+1-a.BasePfn:
			c.fail("altmap %#x: reserve %d + free %d exceed the range", a.BasePfn, a.Reserve, a.Free)
		}
	}
	for _, r := range c.next.Vmemmap {
		if r.Src != mcheck.SrcAltmap {
			continue
		}
		a, ok := live[r.Altmap]
		if !ok {
			continue // INV-3 reports frames of dead altmaps
		}
		if r.Frame < a.BasePfn+a.Reserve || r.Frame+r.N > a.BasePfn+a.Reserve+a.Free {
			c.fail("altmap %#x: frames [%#x, %#x) lie outside its window [%#x, %#x)", a.BasePfn, r.Frame, r.Frame+r.N, a.BasePfn+a.Reserve, a.BasePfn+a.Reserve+a.Free)
			return
		}
	}
}

// inv7 — INV-7 (altmap balance and release path, vmem_altmap_free, x86 free_hugepage_table,
// powerpc free_vmemmap_pages): altmap frames go back only to their altmap, never to the buddy;
// alloc equals the frames still mapped from the altmap; an altmap is freed with alloc == 0.
func inv7(c *ctx) {
	count := map[int]int{}
	for _, r := range c.next.Vmemmap {
		if r.Src == mcheck.SrcAltmap {
			count[r.Altmap] += r.N
		}
	}
	for base, a := range c.liveAltmaps() {
		if count[base] != a.Alloc {
			c.fail("altmap %#x: alloc %d but %d vmemmap pages are mapped from it", base, a.Alloc, count[base])
		}
	}
}

// inv7t — INV-7, transition part: the op freed no altmap frame to the buddy and no altmap with
// frames still accounted to it.
func inv7t(c *ctx) {
	if c.next.BadFrees > 0 && (c.prev == nil || c.next.BadFrees > c.prev.BadFrees) {
		c.fail("%d vmemmap frame(s) taken from an altmap were freed to the buddy allocator", c.next.BadFrees-prevInt(c.prev, func(s *mcheck.Snapshot) int { return s.BadFrees }))
	}
	if c.next.AltmapLeaks > 0 && (c.prev == nil || c.next.AltmapLeaks > c.prev.AltmapLeaks) {
		c.fail("an altmap was freed while alloc != 0 (\"Altmap not fully unmapped\")")
	}
}

func prevInt(s *mcheck.Snapshot, f func(*mcheck.Snapshot) int) int {
	if s == nil {
		return 0
	}
	return f(s)
}

// inv8 — INV-8 (memmap_on_memory containment, mhp_init_memmap_on_memory / vmemmap_populate with
// the block's altmap): frames taken from block B's altmap lie in B's set-aside
// [start, start + nr_vmemmap), and every vmemmap page backed from a set-aside describes only pfns
// of B. (A PMD mapped earlier from ordinary memory may be reused, as ppc radix does; that memmap
// is then simply not self-hosted.)
func inv8(c *ctx) {
	p, s := c.p, c.next
	bp := p.BlockPages()
	per := p.StructPagesPerVmemmapPage()
	for _, b := range hotplugBlocks(s) {
		if b.NrVmemmap == 0 {
			continue
		}
		start := b.ID * bp
		for _, r := range s.Vmemmap {
			if r.Src != mcheck.SrcAltmap {
				continue
			}
			fromB := r.Altmap == start
			inAside := r.Frame < start+b.NrVmemmap && r.Frame+r.N > start
			if fromB && (r.Frame < start || r.Frame+r.N > start+b.NrVmemmap) {
				c.fail("block %d: memmap frames [%#x, %#x) outside its set-aside [%#x, %#x)", b.ID, r.Frame, r.Frame+r.N, start, start+b.NrVmemmap)
				return
			}
			if inAside && (r.Start*per < start || (r.Start+r.N)*per > start+bp) {
				c.fail("block %d: its set-aside backs struct pages of pfns [%#x, %#x) outside the block", b.ID, r.Start*per, (r.Start+r.N)*per)
				return
			}
		}
	}
}

// inv9 — INV-9 (set-aside shape, mhp_supports_memmap_on_memory): 0 < nr_vmemmap < BP and
// nr_vmemmap is a pageblock multiple, so the first usable pfn is pageblock aligned.
func inv9(c *ctx) {
	for _, b := range hotplugBlocks(c.next) {
		if nv := b.NrVmemmap; nv != 0 && (nv < 0 || nv >= c.p.BlockPages() || nv%c.p.PageblockPages() != 0) {
			c.fail("block %d: nr_vmemmap %d is not a pageblock multiple in (0, %d)", b.ID, nv, c.p.BlockPages())
		}
	}
}

// inv10 — INV-10 (self-hosted pages are inert, memory_block_online/offline,
// mhp_init_memmap_on_memory): set-aside pages are never in the buddy, allocated, pinned or part of
// a hugetlb folio. While the block is online they are zone members flagged self-hosted in
// UNMOVABLE pageblocks; while offline they are uninitialized. Nothing else is self-hosted.
func inv10(c *ctx) {
	p, s := c.p, c.next
	bp, pb := p.BlockPages(), p.PageblockPages()
	aside := map[int]bool{} // pfn starts of set-asides, for the "nothing else" check
	for _, b := range hotplugBlocks(s) {
		if b.NrVmemmap == 0 {
			continue
		}
		start := b.ID * bp
		aside[start] = true
		want := mcheck.PagePoisoned
		if b.State == mcheck.BlockOnline {
			want = mcheck.PageSelfHosted
		}
		ok := true
		forPages(s, start, start+b.NrVmemmap, func(r mcheck.PageRun) bool {
			if r.State != want || (want == mcheck.PageSelfHosted && r.Zone != b.Zone) {
				c.fail("block %d (%s): set-aside pfn %#x is %s/%s, want %s", b.ID, b.State, max(r.Start, start), r.State, r.Zone, want)
				ok = false
			}
			return ok
		})
		if !ok {
			return
		}
		if b.State == mcheck.BlockOnline {
			for i := start / pb; i < (start+b.NrVmemmap)/pb; i++ {
				if mt := s.PageblockAt(i); mt != mcheck.MTUnmovable {
					c.fail("block %d: set-aside pageblock %d is %s, want unmovable", b.ID, i, mt)
					return
				}
			}
		}
	}
	for _, r := range s.Pages {
		if r.State == mcheck.PageSelfHosted && !aside[r.Start/bp*bp] {
			c.fail("pfn %#x is self-hosted outside any set-aside", r.Start)
			return
		}
	}
}

// inv11 — INV-11 (accounting, adjust_present_page_count, adjust_managed_page_count): for Normal
// and Movable, present = BP per online hot-added block of the zone and managed = BP - nr_vmemmap
// per such block; both agree with the pages the zone holds (present: initialized pages,
// managed: pages that went through the buddy); nothing is negative; boot DMA32 is unchanged.
func inv11(c *ctx) {
	p, s := c.p, c.next
	var present, managed [mcheck.NrZones]int
	for _, b := range hotplugBlocks(s) {
		if b.State == mcheck.BlockOnline {
			present[b.Zone] += p.BlockPages()
			managed[b.Zone] += p.BlockPages() - b.NrVmemmap
		}
	}
	var pagePresent, pageManaged [mcheck.NrZones]int
	for _, r := range s.Pages {
		switch r.State {
		case mcheck.PageFree, mcheck.PagePinned, mcheck.PageHugetlb:
			pagePresent[r.Zone] += r.N
			pageManaged[r.Zone] += r.N
		case mcheck.PageSelfHosted:
			pagePresent[r.Zone] += r.N
		}
	}
	for _, z := range []mcheck.ZoneID{mcheck.ZoneNormal, mcheck.ZoneMovable} {
		zs := s.Zones[z]
		switch {
		case zs.Present < 0 || zs.Managed < 0:
			c.fail("zone %s: negative counter (present %d, managed %d)", z, zs.Present, zs.Managed)
		case zs.Present != present[z] || zs.Managed != managed[z]:
			c.fail("zone %s: present %d managed %d, but its online blocks add up to present %d managed %d", z, zs.Present, zs.Managed, present[z], managed[z])
		case zs.Present != pagePresent[z] || zs.Managed != pageManaged[z]:
			c.fail("zone %s: present %d managed %d, but it holds %d initialized pages of which %d went through the buddy", z, zs.Present, zs.Managed, pagePresent[z], pageManaged[z])
		}
	}
	if d := s.Zones[mcheck.ZoneDMA32]; d.Present != p.BootRAMPfns() || d.Managed != p.BootRAMPfns() {
		c.fail("zone DMA32 (boot): present %d managed %d, want %d", d.Present, d.Managed, p.BootRAMPfns())
	}
	if d := s.Zones[mcheck.ZoneDevice]; d.Present != 0 || d.Managed != 0 {
		c.fail("zone Device: present %d managed %d, want 0", d.Present, d.Managed)
	}
}

// inv12 — INV-12 (block/section online agreement, online_mem_sections, memory_block_online):
// a hot-added block is online iff every section of it is ONLINE (set-aside sections included);
// offline iff none is; sections without a block are never ONLINE.
func inv12(c *ctx) {
	p, s := c.p, c.next
	spb := p.SectionsPerBlock
	owner := make([]*mcheck.BlockSnap, p.NrBlocks())
	for i := range s.Blocks {
		owner[s.Blocks[i].ID] = &s.Blocks[i]
	}
	for nr, x := range s.Sections {
		on := x.Flags&mcheck.SectionIsOnline != 0
		b := owner[nr/spb]
		switch {
		case b == nil && on:
			c.fail("section %d is ONLINE but has no memory block", nr)
			return
		case b != nil && !b.Boot && on != (b.State == mcheck.BlockOnline):
			c.fail("block %d is %s but section %d has ONLINE=%v", b.ID, b.State, nr, on)
			return
		}
	}
}

// inv13 — INV-13 (block/zone agreement, move_pfn_range_to_zone, memory_block_offline): an online
// block has a zone, all its pfns belong to it and lie in its span; an offline hot-added block
// has no zone and none of its pfns is a zone member.
func inv13(c *ctx) {
	p, s := c.p, c.next
	bp := p.BlockPages()
	for _, b := range hotplugBlocks(s) {
		start := b.ID * bp
		if b.State == mcheck.BlockOnline {
			z := s.Zones[b.Zone]
			if b.Zone == mcheck.ZoneNone || start < z.Start || start+bp > z.End {
				c.fail("online block %d: zone %s span [%#x, %#x) does not cover it", b.ID, b.Zone, z.Start, z.End)
				return
			}
		} else if b.Zone != mcheck.ZoneNone {
			c.fail("offline block %d still has zone %s", b.ID, b.Zone)
			return
		}
		want := b.Zone
		ok := true
		forPages(s, start, start+bp, func(r mcheck.PageRun) bool {
			if r.Zone != want {
				c.fail("block %d (%s, zone %s): pfn %#x is in zone %s", b.ID, b.State, b.Zone, max(r.Start, start), r.Zone)
				ok = false
			}
			return ok
		})
		if !ok {
			return
		}
	}
}

// inv14 — INV-14 (block existence, create_memory_block_devices): a memory block device exists
// only over present sections; a block has an altmap (6.6+) exactly when it self-hosts its memmap;
// 5.13-6.5 blocks carry only nr_vmemmap_pages.
func inv14(c *ctx) {
	p, s := c.p, c.next
	spb := p.SectionsPerBlock
	for _, b := range hotplugBlocks(s) {
		for nr := b.ID * spb; nr < (b.ID+1)*spb; nr++ {
			if s.Sections[nr].Flags&mcheck.SectionMarkedPresent == 0 {
				c.fail("block %d exists but section %d is not present", b.ID, nr)
				return
			}
		}
		if p.KP() >= mcheck.P3 && (b.Altmap != nil) != (b.NrVmemmap > 0) {
			c.fail("block %d: altmap %s but nr_vmemmap %d", b.ID, mcheck.FmtAltmap(b.Altmap), b.NrVmemmap)
		}
		if p.KP() <= mcheck.P2 && b.Altmap != nil {
			c.fail("block %d: kernel %s keeps no altmap in the memory block", b.ID, p.Kernel)
		}
	}
}

// inv15 — INV-15 (remove preconditions, try_remove_memory): a remove succeeds only if every
// block in range was offline and the granularity rule held: 5.13-6.7 a single block when any block
// self-hosts; 6.8+ all blocks or none with altmaps.
func inv15(c *ctx) {
	if c.op == nil || c.op.Kind != mcheck.OpRemoveMemory || c.res.Errno != mcheck.OK {
		return
	}
	self, blocks := 0, 0
	for i := c.op.Block; i < c.op.Block+c.op.Nr; i++ {
		b := c.prev.Block(i)
		if b == nil {
			continue
		}
		blocks++
		if b.State != mcheck.BlockOffline {
			c.fail("removed block %d while it was %s", i, b.State)
		}
		if b.NrVmemmap > 0 {
			self++
		}
	}
	if self > 0 && c.p.KP() <= mcheck.P3 && c.op.Nr != 1 {
		c.fail("removed %d blocks at once although a block self-hosts its memmap (kernel %s)", c.op.Nr, c.p.Kernel)
	}
	if self > 0 && c.p.KP() >= mcheck.P4 && self != c.op.Nr {
		c.fail("removed a range where only %d of %d blocks have altmaps", self, c.op.Nr)
	}
}

// inv16 — INV-16 (remove postconditions, try_remove_memory, arch_remove_memory): after a remove,
// no block remains in the range, and every section of it that was fully populated is gone with
// all its pages (a section partly populated by a failed __add_pages stays: the kernel cannot remove
// it either); altmaps freed with alloc != 0 are INV-7's.
func inv16(c *ctx) {
	if c.op == nil || c.op.Kind != mcheck.OpRemoveMemory || c.res.Errno != mcheck.OK {
		return
	}
	p, s := c.p, c.next
	a, end, _ := opRange(p, c.prev, c.op)
	for i := c.op.Block; i < c.op.Block+c.op.Nr; i++ {
		if s.Block(i) != nil {
			c.fail("block %d still exists after its removal", i)
			return
		}
	}
	pps := p.PagesPerSection()
	for nr := p.SectionOf(a); nr < p.SectionOf(end-1)+1; nr++ {
		lo, hi := max(a, nr*pps), min(end, (nr+1)*pps)
		if !chunkWasFull(p, c.prev, lo, a, end) {
			continue // a leak the kernel cannot remove either (INV-4 checks it is left alone)
		}
		if s.Sections[nr].Flags&mcheck.SectionMarkedPresent != 0 {
			c.fail("section %d still present after removal: %s", nr, mcheck.FmtSection(s.Sections[nr]))
			return
		}
		ok := true
		forPages(s, lo, hi, func(r mcheck.PageRun) bool {
			if r.State != mcheck.PageAbsent {
				c.fail("pfn %#x is %s after removal", max(r.Start, lo), r.State)
				ok = false
			}
			return ok
		})
		if !ok {
			return
		}
	}
}

// chunkWasFull reports whether, in s, every subsection of pfn's section that lies in [a, end) was
// populated: the condition under which section_deactivate clears that chunk.
func chunkWasFull(p *mcheck.Profile, s *mcheck.Snapshot, pfn, a, end int) bool {
	nr := p.SectionOf(pfn)
	pps := p.PagesPerSection()
	lo, hi := max(a, nr*pps), min(end, (nr+1)*pps)
	i0, i1 := p.SubsectionIndex(lo), p.SubsectionIndex(hi-1)+1
	x := s.Sections[nr]
	return x.Usage && x.SubMap.AllInRange(i0, i1)
}

// inv17 — INV-17 (no use of a struct page after its backing is gone, section_deactivate order,
// sparse_remove_section): a page that is alive (initialized, in the buddy, allocated, device,
// self-hosted) has a valid, mapped memmap.
func inv17(c *ctx) {
	p, s := c.p, c.next
	for _, r := range s.Pages {
		if r.State == mcheck.PageAbsent {
			continue
		}
		for pfn := r.Start; pfn < r.Start+r.N; pfn += max(1, min(r.N, p.PagesPerSubsection())) {
			if !PfnValid(p, s, pfn) {
				c.fail("pfn %#x is %s but its memmap is gone (pfn_valid false)", pfn, r.State)
				return
			}
		}
	}
}

// inv18 — INV-18 (HVO exclusion, hugetlb_vmemmap.c vmemmap_should_optimize /
// PageVmemmapSelfHosted): HVO never remaps or frees vmemmap frames that come from an altmap; in
// 5.13-5.19 HVO and memmap_on_memory are never active together.
func inv18(c *ctx) {
	p, s := c.p, c.next
	for _, f := range s.Folios {
		if !f.Optimized {
			continue
		}
		if head := s.VmemmapAt(p.VmemmapPage(f.Pfn)); head.Src == mcheck.SrcAltmap {
			c.fail("hugetlb folio %#x was optimized although its vmemmap is self-hosted (frame %#x)", f.Pfn, head.Frame)
			return
		}
	}
	if p.HVO && p.KP() == mcheck.P1 {
		for _, b := range hotplugBlocks(s) {
			if b.NrVmemmap > 0 {
				c.fail("block %d self-hosts its memmap while HVO is enabled (kernel %s)", b.ID, p.Kernel)
			}
		}
	}
}

// inv19 — INV-19 (online/offline ranges, online_pages/offline_pages): they are entered with
// nr > 0, a pageblock-aligned start and a section-aligned end.
func inv19(c *ctx) {
	if c.op == nil || (c.op.Kind != mcheck.OpOnline && c.op.Kind != mcheck.OpOffline) || c.res.Errno != mcheck.OK {
		return
	}
	b := c.prev.Block(c.op.Block)
	if b == nil {
		c.fail("%s succeeded on a block that did not exist", c.op)
		return
	}
	p := c.p
	start := b.ID*p.BlockPages() + b.NrVmemmap
	end := (b.ID + 1) * p.BlockPages()
	if start >= end || start%p.PageblockPages() != 0 || end%p.PagesPerSection() != 0 {
		c.fail("%s: online_pages/offline_pages range [%#x, %#x) is not pageblock/section aligned", c.op, start, end)
	}
}

// inv20 — INV-20 (online chunking, online_pages_range): an online hands exactly
// [start + nr_vmemmap, end) to the buddy: managed grows by that many pages and all of them are
// free afterwards. (The chunk orders themselves are internal; impl checks them in Check.)
func inv20(c *ctx) {
	if c.op == nil || c.op.Kind != mcheck.OpOnline || c.res.Errno != mcheck.OK {
		return
	}
	b := c.next.Block(c.op.Block)
	if b == nil || b.Boot {
		return
	}
	p := c.p
	start := b.ID*p.BlockPages() + b.NrVmemmap
	end := (b.ID + 1) * p.BlockPages()
	if d := c.next.Zones[b.Zone].Managed - c.prev.Zones[b.Zone].Managed; d != end-start {
		c.fail("online block %d: managed grew by %d, want %d", b.ID, d, end-start)
	}
	forPages(c.next, start, end, func(r mcheck.PageRun) bool {
		if r.State != mcheck.PageFree {
			c.fail("online block %d: pfn %#x is %s, want free", b.ID, max(r.Start, start), r.State)
			return false
		}
		return true
	})
}

// inv21 — INV-21 (isolation bookkeeping, start/undo_isolate_page_range, online_pages):
// nr_isolate_pageblock is back to 0 after every op; after an online every pageblock of the
// onlined range is MOVABLE.
func inv21(c *ctx) {
	for z, zs := range c.next.Zones {
		if zs.NrIsolate != 0 {
			c.fail("zone %s: nr_isolate_pageblock %d after the op", mcheck.ZoneID(z), zs.NrIsolate)
		}
	}
}

// inv21t — INV-21, transition part: after an online every pageblock of the onlined range is
// MOVABLE (undo_isolate_page_range).
func inv21t(c *ctx) {
	if c.op == nil || c.op.Kind != mcheck.OpOnline || c.res.Errno != mcheck.OK {
		return
	}
	b := c.next.Block(c.op.Block)
	p := c.p
	pb := p.PageblockPages()
	for i := (b.ID*p.BlockPages() + b.NrVmemmap) / pb; i < (b.ID+1)*p.BlockPages()/pb; i++ {
		if mt := c.next.PageblockAt(i); mt != mcheck.MTMovable {
			c.fail("online block %d: pageblock %d is %s, want movable", b.ID, i, mt)
			return
		}
	}
}

// inv22 — INV-22 (failure atomicity, the error paths of add_memory_resource,
// create_altmaps_and_memory_blocks, memory_block_online/offline, pagemap_range): a failed op
// leaves everything as it was, except the consumed fail_next, pageblock migratetypes (a failed
// online leaves them isolated, as the kernel does) and the documented x86 __add_pages leak:
// sections of the range activated before the failing one stay present, with no block.
func inv22(c *ctx) {
	if c.op == nil || c.res.Errno == mcheck.OK {
		return
	}
	a, b := *c.prev, *c.next
	if a.Pending != mcheck.FaultNone && b.Pending == mcheck.FaultNone {
		b.Pending = a.Pending
	}
	b.Pageblocks = a.Pageblocks
	if c.op.Kind == mcheck.OpAddMemory || c.op.Kind == mcheck.OpMemremap {
		// Allow the leak: only sections inside the op's range may differ, only by becoming
		// present with their memmap, and pages/vmemmap inside the range are not compared.
		lo, hi, _ := opRange(c.p, c.prev, c.op)
		b.Sections = append([]mcheck.SectionSnap(nil), b.Sections...)
		leaked := false
		for nr := range b.Sections {
			if a.Sections[nr] != b.Sections[nr] && leakShaped(c.p, nr, lo, hi, a.Sections[nr], b.Sections[nr]) {
				b.Sections[nr] = a.Sections[nr]
				leaked = true
			}
		}
		if leaked {
			b.Pages, b.Vmemmap = a.Pages, a.Vmemmap
		}
	}
	if a.Equal(&b) {
		return
	}
	if d := mcheck.Diff(&a, &b, "before", "after", 5); len(d) > 0 {
		c.fail("%s failed with %s but changed state: %v", c.op, c.res.Errno, d)
	}
}

// leakShaped reports whether section nr went from x to y the way a chunk activated by a failed
// __add_pages of [lo, hi) leaves it: PRESENT|HAS_MEM_MAP and a usage added, subsection bits only
// added, all inside the range, no other flag changed.
func leakShaped(p *mcheck.Profile, nr, lo, hi int, x, y mcheck.SectionSnap) bool {
	const added = mcheck.SectionMarkedPresent | mcheck.SectionHasMemMap
	if y.Flags&added != added || x.Flags&^added != y.Flags&^added || !y.Usage {
		return false
	}
	base := nr * p.PagesPerSection()
	for i := 0; i < p.SubsectionsPerSection(); i++ {
		was, is := x.SubMap.Test(i), y.SubMap.Test(i)
		pfn := base + i*p.PagesPerSubsection()
		if was && !is || !was && is && (pfn < lo || pfn >= hi) {
			return false
		}
	}
	return true
}

// inv23 — INV-23 (ZONE_DEVICE taint, section_taint_zone_device, pfn_to_online_page): a section
// holding both device pfns and online memory is tainted; pfn_to_online_page returns NULL for
// device pfns; a pfn_to_online_page query answers what the state says.
func inv23(c *ctx) {
	p, s := c.p, c.next
	for _, g := range s.Pgmaps {
		for pfn := g.Start; pfn < g.Start+g.N; pfn += p.PagesPerSubsection() {
			if OnlinePage(p, s, pfn) {
				c.fail("pfn_to_online_page(%#x) would return a ZONE_DEVICE page", pfn)
				return
			}
		}
	}
}

// inv23t — INV-23, transition part: a pfn_to_online_page query answers what the state says.
func inv23t(c *ctx) {
	p, s := c.p, c.next
	if c.op != nil && c.op.Kind == mcheck.OpPfnToOnlinePage && c.res.Errno == mcheck.OK {
		if want := b2i(OnlinePage(p, s, c.op.Pfn)); c.res.Val != want {
			c.fail("pfn_to_online_page(%#x) answered %d, the state says %d", c.op.Pfn, c.res.Val, want)
		}
	}
}

// inv24 — INV-24 (vmemmap mapping granularity, vmemmap_populate_hugepages, arm64
// vmemmap_populate): PMD mappings come in whole, aligned PMDs, and only where the arch maps the
// vmemmap with PMDs (never with 16K/64K pages on arm64).
func inv24(c *ctx) {
	p, s := c.p, c.next
	pmd := p.PMDPages()
	// Contiguous PMD-mapped stretches must start and end on PMD boundaries.
	a, b := -1, -1
	closeSpan := func() bool {
		if a >= 0 && (a%pmd != 0 || b%pmd != 0) {
			c.fail("vmemmap pages [%#x, %#x) are only partly PMD-mapped PMDs", a, b)
			return false
		}
		return true
	}
	for _, r := range s.Vmemmap {
		if r.Size != mcheck.MapPMD {
			continue
		}
		if !p.HugeVmemmap {
			c.fail("vmemmap pages [%#x, %#x) are PMD-mapped on a profile without huge vmemmap", r.Start, r.Start+r.N)
			return
		}
		if r.Start == b {
			b += r.N
			continue
		}
		if !closeSpan() {
			return
		}
		a, b = r.Start, r.Start+r.N
	}
	closeSpan()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
