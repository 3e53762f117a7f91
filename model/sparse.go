package model

import "github.com/mcheck/mcheck"

// populated is pfn_valid(pfn): the section has a memmap and the pfn's subsection is populated, or
// the section is early (include/linux/mmzone.h pfn_valid).
func (m *Machine) populated(pfn int) bool {
	if pfn < 0 || pfn >= len(m.page) {
		return false
	}
	s := m.sec[m.p.SectionOf(pfn)]
	if s.flags&mcheck.SectionHasMemMap == 0 {
		return false
	}
	return s.flags&mcheck.SectionIsEarly != 0 || (s.usage && s.sub.Test(m.p.SubsectionIndex(pfn)))
}

// onlinePage is pfn_to_online_page(pfn) != NULL (mm/memory_hotplug.c): an online section, the
// pfn's subsection bit (not the early flag), and for tainted sections no ZONE_DEVICE pgmap.
func (m *Machine) onlinePage(pfn int) bool {
	if pfn < 0 || pfn >= len(m.page) {
		return false
	}
	s := m.sec[m.p.SectionOf(pfn)]
	if s.flags&mcheck.SectionIsOnline == 0 || !s.usage || !s.sub.Test(m.p.SubsectionIndex(pfn)) {
		return false
	}
	if s.flags&mcheck.SectionTaintZoneDevice != 0 && m.pgmapAt(pfn) != nil {
		return false
	}
	return true
}

func (m *Machine) pgmapAt(pfn int) *pgmap {
	for _, g := range m.pgmaps {
		if pfn >= g.start && pfn < g.start+g.n {
			return g
		}
	}
	return nil
}

// altmapAlloc is altmap_alloc_block_buf (mm/sparse-vmemmap.c): n pages naturally aligned to the
// lowest set bit of n, padding counted in align.
func (m *Machine) altmapAlloc(a *altmap, n int) (int, bool) {
	if m.fault(mcheck.FaultVmemmap) {
		return 0, false
	}
	next := a.base + a.reserve + a.alloc + a.align
	al := n & -n
	pad := (next+al-1)/al*al - next
	nrFree := a.free - (a.alloc + a.align)
	if nrFree < 0 {
		nrFree = 0
	}
	if n+pad > nrFree {
		return 0, false
	}
	a.alloc += n
	a.align += pad
	return next + pad, true
}

// buddyAlloc is a vmemmap frame from the page allocator (vmemmap_alloc_block); only fail_next
// makes it fail.
func (m *Machine) buddyAlloc() bool { return !m.fault(mcheck.FaultVmemmap) }

// vmemmapRange is the vmemmap pages holding the struct pages of [a, a+n).
func (m *Machine) vmemmapRange(a, n int) (int, int) {
	S, P := m.p.StructPageBytes, m.p.PageBytes()
	return a * S / P, ((a+n)*S + P - 1) / P
}

func (m *Machine) unitEmpty(u int) bool {
	for v := u; v < u+m.p.PMDPages(); v++ {
		if m.vm[v].src != mcheck.SrcUnmapped {
			return false
		}
	}
	return true
}

func (m *Machine) unitIsPMD(u int) bool { return m.vm[u].size == mcheck.MapPMD }

func (m *Machine) mapPMD(u int, src mcheck.FrameSource, frame int, a *altmap) {
	for i := 0; i < m.p.PMDPages(); i++ {
		x := vpage{src: src, size: mcheck.MapPMD}
		if src == mcheck.SrcAltmap {
			x.frame, x.altmap = int32(frame+i), int32(a.base)
		}
		m.vm[u+i] = x
	}
}

// basePage maps vmemmap page v with a base frame from the altmap (if given) or the buddy
// (vmemmap_pte_populate).
func (m *Machine) basePage(v int, a *altmap) bool {
	if m.vm[v].src != mcheck.SrcUnmapped {
		return true
	}
	if a != nil {
		f, ok := m.altmapAlloc(a, 1)
		if !ok {
			return false
		}
		m.vm[v] = vpage{src: mcheck.SrcAltmap, size: mcheck.MapBase, frame: int32(f), altmap: int32(a.base)}
		return true
	}
	if !m.buddyAlloc() {
		return false
	}
	m.vm[v] = vpage{src: mcheck.SrcBuddy, size: mcheck.MapBase}
	return true
}

// basePages is vmemmap_populate_basepages: every missing page of [vs, ve) gets a base frame.
func (m *Machine) basePages(vs, ve int, a *altmap) bool {
	for v := vs; v < ve; v++ {
		if !m.basePage(v, a) {
			return false
		}
	}
	return true
}

// hugePages is vmemmap_populate_hugepages (mm/sparse-vmemmap.c).
func (m *Machine) hugePages(vs, ve int, a *altmap) bool {
	pmd := m.p.PMDPages()
	for c := vs; c < ve; {
		next := min((c/pmd+1)*pmd, ve)
		u := c / pmd * pmd
		if m.unitEmpty(u) {
			if a != nil {
				f, ok := m.altmapAlloc(a, pmd)
				if !ok {
					return false // no fallback with an altmap
				}
				m.mapPMD(u, mcheck.SrcAltmap, f, a)
				c = next
				continue
			}
			if m.buddyAlloc() {
				m.mapPMD(u, mcheck.SrcBuddy, 0, nil)
				c = next
				continue
			}
		} else if m.unitIsPMD(u) {
			c = next
			continue
		}
		if !m.basePages(c, next, a) {
			return false
		}
		c = next
	}
	return true
}

// crossesAltmap is powerpc's altmap_cross_boundary for vmemmap pages [v, v+n).
func (m *Machine) crossesAltmap(a *altmap, v, n int) bool {
	per := m.p.StructPagesPerVmemmapPage()
	p0 := v * per
	return p0 < a.base || p0+n*per-1 > a.end
}

// ppcPopulate is radix__vmemmap_populate (arch/powerpc/mm/book3s64/radix_pgtable.c).
func (m *Machine) ppcPopulate(vs, ve int, a *altmap) bool {
	pmd := m.p.PMDPages()
	for c := vs; c < ve; {
		next := min((c/pmd+1)*pmd, ve)
		u := c / pmd * pmd
		if m.unitEmpty(u) && m.p.HugeVmemmap {
			if a == nil || (c%pmd == 0 && !m.crossesAltmap(a, c, pmd)) {
				if a != nil {
					if f, ok := m.altmapAlloc(a, pmd); ok {
						m.mapPMD(u, mcheck.SrcAltmap, f, a)
						c = next
						continue
					}
				} else if m.buddyAlloc() {
					m.mapPMD(u, mcheck.SrcBuddy, 0, nil)
					c = next
					continue
				}
			}
		} else if m.unitIsPMD(u) {
			c = next
			continue
		}
		// base_mapping: one page (radix__vmemmap_pte_populate).
		if m.vm[c].src == mcheck.SrcUnmapped {
			pa := a
			if pa != nil && m.crossesAltmap(pa, c, 1) {
				pa = nil
			}
			ok := false
			if pa != nil {
				var f int
				if f, ok = m.altmapAlloc(pa, 1); ok {
					m.vm[c] = vpage{src: mcheck.SrcAltmap, size: mcheck.MapBase, frame: int32(f), altmap: int32(pa.base)}
				}
			}
			if !ok {
				if !m.buddyAlloc() {
					return false
				}
				m.vm[c] = vpage{src: mcheck.SrcBuddy, size: mcheck.MapBase}
			}
		}
		c++
	}
	return true
}

// populate is __populate_section_memmap -> arch vmemmap_populate for pfns [a, a+n).
func (m *Machine) populate(a, n int, alt *altmap) bool {
	vs, ve := m.vmemmapRange(a, n)
	partial := n < m.p.PagesPerSection()
	switch m.p.Populate {
	case mcheck.PopulateX86:
		// arch/x86/mm/init_64.c: partial sections get base pages from ordinary memory.
		if partial {
			return m.basePages(vs, ve, nil)
		}
		return m.hugePages(vs, ve, alt)
	case mcheck.PopulateARM64:
		// arch/arm64/mm/mmu.c: base pages (from the altmap) unless a whole section on 4K.
		if !m.p.HugeVmemmap || partial {
			return m.basePages(vs, ve, alt)
		}
		return m.hugePages(vs, ve, alt)
	default:
		return m.ppcPopulate(vs, ve, alt)
	}
}

// releaseToBuddy frees vmemmap frames to the page allocator; frames that came from an altmap must
// never go there (INV-7).
func (m *Machine) releaseToBuddy(x vpage) {
	if x.src == mcheck.SrcAltmap {
		m.badFrees++
	}
}

// depopulate is depopulate_section_memmap -> arch vmemmap_free for pfns [a, a+n): a mapping unit
// is torn down once no pfn it describes is still populated (x86 memset 0xFD + memchr_inv,
// vmemmap_pmd_is_unused; ppc vmemmap_page_is_unused); the release path is the arch's.
func (m *Machine) depopulate(a, n int, alt *altmap) {
	vs, ve := m.vmemmapRange(a, n)
	per := m.p.StructPagesPerVmemmapPage()
	pmd := m.p.PMDPages()
	for v := vs; v < ve; {
		x := m.vm[v]
		if x.src == mcheck.SrcUnmapped {
			v++
			continue
		}
		u0, u1 := v, v+1
		if x.size == mcheck.MapPMD {
			u0 = v / pmd * pmd
			u1 = u0 + pmd
		}
		used := false
		for pfn := u0 * per; pfn < u1*per && !used; pfn++ {
			used = m.populated(pfn)
		}
		if !used {
			m.releaseUnit(u0, u1, alt)
		}
		v = u1
	}
}

func (m *Machine) inWindow(a *altmap, frame int) bool {
	return frame >= a.base && frame < a.base+a.reserve+a.free
}

// releaseUnit unmaps vmemmap pages [u0, u1) and releases their frames.
func (m *Machine) releaseUnit(u0, u1 int, alt *altmap) {
	x := m.vm[u0]
	pages := u1 - u0
	switch {
	case x.src == mcheck.SrcHVOShared:
		// a read-only alias of the head's frame: nothing to free
	case m.p.Populate == mcheck.PopulateX86 && x.size == mcheck.MapBase:
		// remove_pte_table: base pages always go back through free_pagetable.
		m.releaseToBuddy(x)
	case m.p.Populate == mcheck.PopulatePPCRadix:
		// free_vmemmap_pages: the altmap only if the frame lies in its window.
		// Buddy and boot frames never lie in a not-yet-online device range.
		if alt != nil && x.src == mcheck.SrcAltmap && m.inWindow(alt, int(x.frame)) {
			alt.alloc -= pages
		} else {
			m.releaseToBuddy(x)
		}
	default:
		// x86 free_hugepage_table, arm64 free_hotplug_page_range: by the altmap argument.
		if alt != nil {
			alt.alloc -= pages
		} else {
			m.releaseToBuddy(x)
		}
	}
	for v := u0; v < u1; v++ {
		m.vm[v] = vpage{}
	}
}

// subRange is the subsection indexes [i0, i1) of a chunk inside one section.
func (m *Machine) subRange(a, n int) (int, int) {
	return m.p.SubsectionIndex(a), m.p.SubsectionIndex(a+n-1) + 1
}

func (m *Machine) setPageblocks(sec int, mt mcheck.Migratetype) {
	pb := m.p.PageblockPages()
	first := sec * m.p.PagesPerSection() / pb
	for i := first; i < first+m.p.PagesPerSection()/pb; i++ {
		m.mt[i] = mt
	}
}

// sectionActivate is sparse_add_section -> section_activate (mm/sparse.c) for a chunk inside one
// section.
func (m *Machine) sectionActivate(a, n int, alt *altmap) mcheck.Errno {
	nr := m.p.SectionOf(a)
	s := &m.sec[nr]
	fresh := false
	if !s.usage {
		if m.fault(mcheck.FaultUsage) {
			return mcheck.ENOMEM
		}
		s.usage, s.sub, fresh = true, mcheck.SubsectionMap{}, true
		m.setPageblocks(nr, mcheck.MTUnmovable) // a zeroed pageblock_flags reads UNMOVABLE
	}
	i0, i1 := m.subRange(a, n)
	if s.sub.AnyInRange(i0, i1) { // fill_subsection_map
		if fresh {
			s.usage = false
		}
		return mcheck.EEXIST
	}
	s.sub.SetRange(i0, i1)
	if !(s.flags&mcheck.SectionIsEarly != 0 && n < m.p.PagesPerSection()) {
		if !m.populate(a, n, alt) {
			m.sectionDeactivate(a, n, alt)
			return mcheck.ENOMEM
		}
	}
	for pfn := a; pfn < a+n; pfn++ { // page_init_poison
		m.page[pfn], m.pzone[pfn] = mcheck.PagePoisoned, mcheck.ZoneNone
	}
	s.flags |= mcheck.SectionMarkedPresent | mcheck.SectionHasMemMap
	return mcheck.OK
}

// sectionDeactivate is section_deactivate (mm/sparse.c).
func (m *Machine) sectionDeactivate(a, n int, alt *altmap) {
	nr := m.p.SectionOf(a)
	s := &m.sec[nr]
	i0, i1 := m.subRange(a, n)
	if !s.usage || !s.sub.AllInRange(i0, i1) {
		return // WARN: section already deactivated
	}
	s.sub.ClearRange(i0, i1)
	empty := s.sub.IsZero()
	early := s.flags&mcheck.SectionIsEarly != 0
	if empty {
		s.flags &^= mcheck.SectionHasMemMap // pfn_valid() stops looking at usage first
		if !s.bootUsage {
			s.usage = false
		}
	}
	switch {
	case !early:
		m.depopulate(a, n, alt)
		for pfn := a; pfn < a+n; pfn++ {
			m.page[pfn], m.pzone[pfn] = mcheck.PageAbsent, mcheck.ZoneNone
		}
	case empty:
		start := nr * m.p.PagesPerSection()
		m.depopulate(start, m.p.PagesPerSection(), alt) // free_map_bootmem: the whole boot memmap
		for pfn := start; pfn < start+m.p.PagesPerSection(); pfn++ {
			m.page[pfn], m.pzone[pfn] = mcheck.PageAbsent, mcheck.ZoneNone
		}
	}
	if empty {
		s.flags = 0
	}
}

// sectionChunks calls f for each piece of [a, a+n) that lies inside one section.
func (m *Machine) sectionChunks(a, n int, f func(a, n int) bool) {
	pps := m.p.PagesPerSection()
	for pfn := a; pfn < a+n; {
		cur := min(a+n, (pfn/pps+1)*pps) - pfn
		if !f(pfn, cur) {
			return
		}
		pfn += cur
	}
}

// addPages is __add_pages (mm/memory_hotplug.c). On an error the chunks activated before it stay
// (x86 add_pages only WARNs): the documented non-atomic failure.
func (m *Machine) addPages(a, n int, alt *altmap) mcheck.Errno {
	if alt != nil {
		if alt.base != a || alt.reserve+alt.free > n {
			return mcheck.EINVAL
		}
		alt.alloc = 0
	}
	err := mcheck.OK
	m.sectionChunks(a, n, func(pfn, cur int) bool {
		err = m.sectionActivate(pfn, cur, alt)
		return err == mcheck.OK
	})
	return err
}

// removePages is __remove_pages -> sparse_remove_section.
func (m *Machine) removePages(a, n int, alt *altmap) {
	m.sectionChunks(a, n, func(pfn, cur int) bool {
		if m.sec[m.p.SectionOf(pfn)].flags&mcheck.SectionHasMemMap != 0 {
			m.sectionDeactivate(pfn, cur, alt)
		}
		return true
	})
}
