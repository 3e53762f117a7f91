package impl

import (
	"github.com/mcheck/mcheck"
)

// Frame sources as stored in pte.src.
const (
	srcNone   = uint8(mcheck.SrcUnmapped)
	srcBoot   = uint8(mcheck.SrcBoot)
	srcBuddy  = uint8(mcheck.SrcBuddy)
	srcAltmap = uint8(mcheck.SrcAltmap)
	srcHVO    = uint8(mcheck.SrcHVOShared)
)

// vMapped reports whether vmemmap page v is mapped.
func (m *Machine) vMapped(v int) bool {
	u := v / m.g.pmdPages
	if u >= len(m.units) {
		return false
	}
	un := &m.units[u]
	switch un.kind {
	case unitPMD:
		return true
	case unitTable:
		return m.table(u)[v-u*m.g.pmdPages].src != srcNone
	}
	return false
}

// frameAt is the backing of vmemmap page v as a base-page entry.
func (m *Machine) frameAt(v int) pte {
	u := v / m.g.pmdPages
	un := &m.units[u]
	switch un.kind {
	case unitPMD:
		e := un.pmd
		if e.src == srcAltmap {
			e.frame += int32(v - u*m.g.pmdPages)
		}
		return e
	case unitTable:
		return m.table(u)[v-u*m.g.pmdPages]
	}
	return pte{}
}

// setPte maps (or, with src none, unmaps) base page v; the unit must not be a PMD.
func (m *Machine) setPte(v int, e pte) {
	g := m.g
	u := v / g.pmdPages
	un := &m.units[u]
	if un.kind == unitEmpty {
		if e.src == srcNone {
			return
		}
		m.newTable(u)
	}
	old := &m.table(u)[v-u*g.pmdPages]
	if old.src == srcNone && e.src != srcNone {
		un.nmapped++
	} else if old.src != srcNone && e.src == srcNone {
		un.nmapped--
	}
	*old = e
	if un.nmapped == 0 {
		m.freeTable(u) // page-table page freed: canonical empty unit
	}
}

// table is the entries of table unit u.
func (m *Machine) table(u int) []pte {
	pp := m.g.pmdPages
	i := int(m.units[u].tab) * pp
	return m.ptes[i : i+pp : i+pp]
}

// newTable turns the empty unit u into an empty table, reusing a freed slot of the pool.
func (m *Machine) newTable(u int) {
	pp := m.g.pmdPages
	var idx int
	if m.freeTab > 0 {
		idx = int(m.freeTab - 1)
		t := m.ptes[idx*pp : (idx+1)*pp]
		m.freeTab = t[0].frame // intrusive free list: next free slot + 1
		clear(t)
	} else {
		idx = len(m.ptes) / pp
		m.ptes = append(m.ptes, make([]pte, pp)...)
	}
	m.units[u] = unit{kind: unitTable, tab: int32(idx)}
}

// freeTable empties unit u and puts its table on the free list.
func (m *Machine) freeTable(u int) {
	idx := m.units[u].tab
	m.table(u)[0] = pte{frame: m.freeTab}
	m.freeTab = idx + 1
	m.units[u] = unit{}
}

// splitPMD turns a PMD unit into a table of base pages with the same frames.
func (m *Machine) splitPMD(u int) {
	g := m.g
	un := &m.units[u]
	if un.kind != unitPMD {
		return
	}
	e := un.pmd
	m.newTable(u)
	tab := m.table(u)
	for i := range tab {
		tab[i] = e
		if e.src == srcAltmap {
			tab[i].frame += int32(i)
		}
	}
	m.units[u].nmapped = int32(g.pmdPages)
}

// altmapAlloc is altmap_alloc_block_buf for n pages (a vmemmap fault makes it fail).
func (m *Machine) altmapAlloc(a *altmap, n int) (int, bool) {
	if m.fault(mcheck.FaultVmemmap) {
		return 0, false
	}
	next := a.nextPfn()
	al := n & -n
	pad := alignUp(next, al) - next
	if n+pad > a.nrFree() {
		return 0, false
	}
	a.alloc += n
	a.align += pad
	return next + pad, true
}

// allocFrame takes an n-page data frame from the altmap if given, else from the buddy.
func (m *Machine) allocFrame(a *altmap, n int) (pte, bool) {
	if a != nil {
		f, ok := m.altmapAlloc(a, n)
		if !ok {
			return pte{}, false
		}
		return pte{src: srcAltmap, frame: int32(f), alt: int32(a.base)}, true
	}
	if m.fault(mcheck.FaultVmemmap) {
		return pte{}, false
	}
	return pte{src: srcBuddy}, true
}

// populate is __populate_section_memmap -> arch vmemmap_populate for pfns [a, a+n).
func (m *Machine) populate(a, n int, alt *altmap) mcheck.Errno {
	g := m.g
	vs, ve := g.vOf(a), g.vEnd(a+n)
	partial := n < g.pps
	switch g.p.Populate {
	case mcheck.PopulateX86:
		if partial { // base pages from ordinary memory: the altmap is ignored
			return m.populateBase(vs, ve, nil)
		}
		return m.populateHuge(vs, ve, alt)
	case mcheck.PopulateARM64:
		if !g.p.HugeVmemmap || partial {
			return m.populateBase(vs, ve, alt)
		}
		return m.populateHuge(vs, ve, alt)
	}
	return m.populatePPC(vs, ve, alt)
}

// populateBase maps every missing page of [vs, ve) with a base frame (altmap if given).
func (m *Machine) populateBase(vs, ve int, alt *altmap) mcheck.Errno {
	for v := vs; v < ve; v++ {
		if m.vMapped(v) {
			continue
		}
		e, ok := m.allocFrame(alt, 1)
		if !ok {
			return mcheck.ENOMEM
		}
		m.setPte(v, e)
	}
	return mcheck.OK
}

// populateHuge is vmemmap_populate_hugepages.
func (m *Machine) populateHuge(vs, ve int, alt *altmap) mcheck.Errno {
	g := m.g
	for c := vs; c < ve; {
		u := c / g.pmdPages
		next := min((u+1)*g.pmdPages, ve)
		switch m.units[u].kind {
		case unitEmpty:
			if e, ok := m.allocFrame(alt, g.pmdPages); ok {
				m.units[u] = unit{kind: unitPMD, pmd: e}
			} else if alt != nil {
				return mcheck.ENOMEM
			} else if err := m.populateBase(c, next, nil); err != mcheck.OK {
				return err
			}
		case unitTable:
			if err := m.populateBase(c, next, alt); err != mcheck.OK {
				return err
			}
		}
		c = next
	}
	return mcheck.OK
}

// crosses is altmap_cross_boundary for the pfns described by vmemmap pages [v, v+np).
func (m *Machine) crosses(a *altmap, v, np int) bool {
	g := m.g
	p0 := v << g.pageShift / g.spage
	cnt := np << g.pageShift / g.spage
	return p0 < a.base || p0+cnt-1 > a.end
}

// populatePPC is radix__vmemmap_populate.
func (m *Machine) populatePPC(vs, ve int, alt *altmap) mcheck.Errno {
	g := m.g
	for c := vs; c < ve; {
		u := c / g.pmdPages
		next := min((u+1)*g.pmdPages, ve)
		un := &m.units[u]
		base := true
		switch {
		case un.kind == unitPMD:
			base = false
		case un.kind == unitEmpty && g.p.HugeVmemmap:
			if !(alt != nil && (c%g.pmdPages != 0 || m.crosses(alt, c, g.pmdPages))) {
				if e, ok := m.allocFrame(alt, g.pmdPages); ok {
					m.units[u] = unit{kind: unitPMD, pmd: e}
					base = false
				}
			}
		}
		if base {
			for v := c; v < next; v++ {
				if m.vMapped(v) {
					continue
				}
				if alt != nil && !m.crosses(alt, v, 1) {
					if f, ok := m.altmapAlloc(alt, 1); ok {
						m.setPte(v, pte{src: srcAltmap, frame: int32(f), alt: int32(alt.base)})
						continue
					}
				}
				e, ok := m.allocFrame(nil, 1)
				if !ok {
					return mcheck.ENOMEM
				}
				m.setPte(v, e)
			}
		}
		c = next
	}
	return mcheck.OK
}

// toBuddy releases a data frame to the buddy; an altmap frame there is a bad free. BadFrees
// counts frames: a PMD frame is one.
func (m *Machine) toBuddy(src uint8) {
	if src == srcAltmap {
		m.badFrees++
	}
}

// inWindow is the ppc window test base <= frame < base + reserve + free.
func inWindow(a *altmap, e pte) bool {
	return e.src == srcAltmap && a.base <= int(e.frame) && int(e.frame) < a.base+a.reserve+a.free
}

// releasePMD releases the frame of PMD unit u (vmemmap_free).
func (m *Machine) releasePMD(u int, alt *altmap) {
	g := m.g
	e := m.units[u].pmd
	m.units[u] = unit{}
	switch g.p.Populate {
	case mcheck.PopulatePPCRadix:
		if alt != nil && inWindow(alt, e) {
			alt.alloc -= g.pmdPages
			return
		}
	default:
		if alt != nil {
			alt.alloc -= g.pmdPages
			return
		}
	}
	m.toBuddy(e.src)
}

// releaseBase releases the frame of base page v.
func (m *Machine) releaseBase(v int, alt *altmap) {
	e := m.frameAt(v)
	m.setPte(v, pte{})
	if e.src == srcHVO {
		return
	}
	switch m.g.p.Populate {
	case mcheck.PopulateX86:
	case mcheck.PopulateARM64:
		if alt != nil {
			alt.alloc--
			return
		}
	default:
		if alt != nil && inWindow(alt, e) {
			alt.alloc--
			return
		}
	}
	m.toBuddy(e.src)
}

// depopulate is depopulate_section_memmap -> vmemmap_free for pfns [a, a+n): every mapped unit
// intersecting the range none of whose pfns is still populated is unmapped and released.
func (m *Machine) depopulate(a, n int, alt *altmap) {
	g := m.g
	vs, ve := g.vOf(a), g.vEnd(a+n)
	for v := vs; v < ve; {
		u := v / g.pmdPages
		uEnd := (u + 1) * g.pmdPages
		switch m.units[u].kind {
		case unitEmpty:
			v = uEnd
		case unitPMD:
			if !m.populatedRange(g.pfnOfV(u*g.pmdPages), g.pfnOfV(uEnd)) {
				m.releasePMD(u, alt)
			}
			v = uEnd
		case unitTable:
			e := min(uEnd, ve)
			for ; v < e; v++ {
				if m.units[u].kind != unitTable {
					break // table emptied and freed
				}
				if m.table(u)[v-u*g.pmdPages].src != srcNone && !m.populatedRange(g.pfnOfV(v), g.pfnOfV(v+1)) {
					m.releaseBase(v, alt)
				}
			}
			v = e
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Hugetlb vmemmap optimization.

// hvoPages is the number of vmemmap pages of one huge page's struct pages.
func (g *geom) hvoPages() int { return g.hugePages * g.spage / g.pageBytes }

// hvoOptimize remaps the tail vmemmap pages of the folio at f onto its head page.
func (m *Machine) hvoOptimize(f int) {
	g := m.g
	head := g.vOf(f)
	end := head + g.hvoPages()
	for u := head / g.pmdPages; u*g.pmdPages < end; u++ {
		m.splitPMD(u)
	}
	for v := head + 1; v < end; v++ {
		e := m.frameAt(v)
		m.toBuddy(e.src)
		m.setPte(v, pte{src: srcHVO, frame: int32(head)})
	}
}

// hvoRestore gives the tail pages of an optimized folio fresh buddy frames.
func (m *Machine) hvoRestore(f int) {
	g := m.g
	head := g.vOf(f)
	for v := head + 1; v < head+g.hvoPages(); v++ {
		m.setPte(v, pte{src: srcBuddy})
	}
}
