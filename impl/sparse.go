package impl

import (
	"math/bits"

	"github.com/mcheck/mcheck"
)

// ---------------------------------------------------------------------------------------------
// Pageblock migratetype nibbles (usage->pageblock_flags), word-parallel.

// setPB sets the migratetype of every pageblock starting in [a, b).
func (m *Machine) setPB(a, b int, mt uint64) {
	g := m.g
	i0 := (a + g.pbPages - 1) / g.pbPages
	i1 := (b + g.pbPages - 1) / g.pbPages
	pat := mt * 0x1111111111111111
	for i0 < i1 {
		s := i0 / g.pbPerSec
		lo := i0 - s*g.pbPerSec
		hi := min(i1-s*g.pbPerSec, g.pbPerSec)
		words := m.pb[s*g.pbWords : (s+1)*g.pbWords]
		for j := lo; j < hi; {
			w := j >> 4
			bitLo := uint(j&15) * 4
			n := min(hi-j, 16-(j&15))
			var mask uint64
			if n == 16 {
				mask = ^uint64(0)
			} else {
				mask = (1<<(uint(n)*4) - 1) << bitLo
			}
			words[w] = words[w]&^mask | pat&mask
			j += n
		}
		i0 = (s + 1) * g.pbPerSec
	}
}

// pbAt reads pageblock i's nibble.
func (m *Machine) pbAt(i int) uint64 {
	g := m.g
	s := i / g.pbPerSec
	j := i - s*g.pbPerSec
	return m.pb[s*g.pbWords+j>>4] >> (uint(j&15) * 4) & 15
}

func (m *Machine) clearPB(s int) {
	w := m.pb[s*m.g.pbWords : (s+1)*m.g.pbWords]
	for i := range w {
		w[i] = 0
	}
}

// ---------------------------------------------------------------------------------------------
// Predicates.

// populated is pfn_valid.
func (m *Machine) populated(p int) bool {
	sec := &m.secs[p>>m.g.secShift]
	if sec.flags&fHasMap == 0 {
		return false
	}
	return sec.flags&fEarly != 0 || sec.submap.Test(m.g.subIndex(p))
}

// populatedRange reports whether any pfn of [a, b) is populated (section words and masks).
func (m *Machine) populatedRange(a, b int) bool {
	g := m.g
	b = min(b, g.nPfns)
	for a < b {
		s := a >> g.secShift
		e := min(g.secStart(s+1), b)
		sec := &m.secs[s]
		if sec.flags&fHasMap != 0 && (sec.flags&fEarly != 0 || sec.submap.AnyInRange(g.subRange(a, e))) {
			return true
		}
		a = e
	}
	return false
}

// pgmapAt returns the pgmap covering p (the most recent if ranges nest), or nil.
func (m *Machine) pgmapAt(p int) *pgmap {
	var r *pgmap
	for i := range m.pgmaps {
		g := &m.pgmaps[i]
		if g.start > p {
			break
		}
		if p < g.start+g.n {
			r = g
		}
	}
	return r
}

// onlinePage is pfn_to_online_page(p) != NULL.
func (m *Machine) onlinePage(p int) bool {
	sec := &m.secs[p>>m.g.secShift]
	if sec.flags&fOnline == 0 || !sec.submap.Test(m.g.subIndex(p)) {
		return false
	}
	return sec.flags&fTaint == 0 || m.pgmapAt(p) == nil
}

// ---------------------------------------------------------------------------------------------
// Derived page state.

// pageRun returns the state and zone of pfn p and the end of a stretch from p on which they do
// not change (not necessarily maximal).
func (m *Machine) pageRun(p int) (mcheck.PageState, mcheck.ZoneID, int) {
	g := m.g
	s := p >> g.secShift
	sec := &m.secs[s]
	ss := g.secStart(s)
	se := ss + g.pps
	if sec.flags&fHasMap == 0 {
		return mcheck.PageAbsent, mcheck.ZoneNone, se
	}
	i := (p - ss) >> g.subShift
	runEnd := ss + bitRunEnd(&sec.submap, i, g.subPerSec)<<g.subShift
	if !sec.submap.Test(i) {
		if sec.flags&fEarly != 0 {
			subEnd := ss + (i+1)<<g.subShift
			if s == g.holeSec && m.holeDirty.Test(i) {
				return mcheck.PagePoisoned, mcheck.ZoneNone, subEnd
			}
			return mcheck.PageHole, mcheck.ZoneNone, subEnd
		}
		return mcheck.PageAbsent, mcheck.ZoneNone, runEnd
	}
	b := p / g.bp
	if blk := &m.blocks[b]; blk.exists && !blk.boot {
		st, z, e := m.blockRun(b, p)
		return st, z, min(e, runEnd)
	}
	if p < g.bootRAM {
		return mcheck.PageBoot, mcheck.ZoneDMA32, min(runEnd, g.bootRAM)
	}
	end := runEnd
	for i := range m.pgmaps {
		pg := &m.pgmaps[i]
		if pg.start > p {
			end = min(end, pg.start)
			break
		}
	}
	if pg := m.pgmapAt(p); pg != nil {
		st, e := pg.run(p)
		z := mcheck.ZoneDevice
		if st == mcheck.PagePoisoned {
			z = mcheck.ZoneNone
		}
		return st, z, min(e, runEnd)
	}
	return mcheck.PagePoisoned, mcheck.ZoneNone, end
}

// run is the state of a pgmap's page p and where it changes.
func (pg *pgmap) run(p int) (mcheck.PageState, int) {
	end := pg.start + pg.n
	if !pg.hasAlt {
		return mcheck.PageDevice, end
	}
	r := pg.start + pg.alt.reserve
	w := r + pg.alt.free
	switch {
	case p < r:
		return mcheck.PagePoisoned, r
	case p < w:
		return mcheck.PageDeviceMemmap, w
	}
	return mcheck.PageDevice, end
}

// blockRun derives page p of a hot-added block with a device.
func (m *Machine) blockRun(b, p int) (mcheck.PageState, mcheck.ZoneID, int) {
	g := m.g
	blk := &m.blocks[b]
	start := b * g.bp
	end := start + g.bp
	if p < start+blk.nv {
		if blk.asInit {
			return mcheck.PageSelfHosted, blk.zone, start + blk.nv
		}
		return mcheck.PagePoisoned, mcheck.ZoneNone, start + blk.nv
	}
	if !blk.restInit {
		return mcheck.PagePoisoned, mcheck.ZoneNone, end
	}
	next := end
	if g.slots > 0 {
		slot := (p - start) / g.hugePages
		fw := m.folio[b*g.slotWords : (b+1)*g.slotWords]
		if slot < g.slots && fw[slot>>6]>>uint(slot&63)&1 != 0 {
			return mcheck.PageHugetlb, blk.zone, start + (slot+1)*g.hugePages
		}
		if ns := nextBit(fw, slot+1, g.slots); ns >= 0 {
			next = min(next, start+ns*g.hugePages)
		}
	}
	if i := m.pinIndex(p); i < len(m.pins) {
		q := int(m.pins[i])
		if q == p {
			return mcheck.PagePinned, blk.zone, p + 1
		}
		next = min(next, q)
	}
	return mcheck.PageFree, blk.zone, next
}

// nextBit is the first set bit >= i (and < n) of the bitmap w, or -1.
func nextBit(w []uint64, i, n int) int {
	for i < n {
		x := w[i>>6] >> uint(i&63)
		if x != 0 {
			r := i + bits.TrailingZeros64(x)
			if r < n {
				return r
			}
			return -1
		}
		i = (i>>6 + 1) << 6
	}
	return -1
}

// pageZone reads the zone of struct page p (a struct page read: its vmemmap must be mapped).
func (m *Machine) pageZone(p int) mcheck.ZoneID {
	m.readPage(p)
	_, z, _ := m.pageRun(p)
	return z
}

// readPage records a sticky note if the struct page of p has no vmemmap frame behind it.
func (m *Machine) readPage(p int) {
	if !m.vMapped(m.g.vOf(p)) {
		m.note("struct page of pfn %#x read after its vmemmap frame was freed", p)
	}
}

// ---------------------------------------------------------------------------------------------
// section_activate / section_deactivate / __add_pages / __remove_pages.

func (m *Machine) sectionActivate(a, n int, alt *altmap) mcheck.Errno {
	g := m.g
	s := a >> g.secShift
	sec := &m.secs[s]
	fresh := false
	if !sec.usage {
		if m.fault(mcheck.FaultUsage) {
			return mcheck.ENOMEM
		}
		sec.usage = true
		fresh = true
		m.clearPB(s)
	}
	i0, i1 := g.subRange(a, a+n)
	if sec.submap.AnyInRange(i0, i1) {
		if fresh {
			sec.usage = false
		}
		return mcheck.EEXIST
	}
	sec.submap.SetRange(i0, i1)
	if !(sec.flags&fEarly != 0 && n < g.pps) {
		if err := m.populate(a, n, alt); err != mcheck.OK {
			m.sectionDeactivate(a, n, alt)
			return mcheck.ENOMEM
		}
	}
	if sec.flags&fEarly != 0 && s == g.holeSec {
		m.holeDirty.SetRange(i0, i1)
	}
	sec.flags |= fPresent | fHasMap
	return mcheck.OK
}

func (m *Machine) sectionDeactivate(a, n int, alt *altmap) {
	g := m.g
	s := a >> g.secShift
	sec := &m.secs[s]
	i0, i1 := g.subRange(a, a+n)
	if !sec.usage || !sec.submap.AllInRange(i0, i1) {
		return // WARN: section already deactivated
	}
	sec.submap.ClearRange(i0, i1)
	empty := sec.submap.IsZero()
	early := sec.flags&fEarly != 0
	if empty {
		sec.flags &^= fHasMap
		if !sec.bootUsage {
			sec.usage = false
		}
	}
	if !early {
		m.depopulate(a, n, alt)
	} else if empty {
		m.depopulate(g.secStart(s), g.pps, alt)
	}
	if empty {
		sec.flags = 0
	}
}

// addPages is __add_pages: non-atomic, no rollback of earlier chunks on failure.
func (m *Machine) addPages(a, n int, alt *altmap) mcheck.Errno {
	if alt != nil {
		if alt.base != a || alt.reserve+alt.free > n {
			return mcheck.EINVAL
		}
		alt.alloc = 0
	}
	for e := a + n; a < e; {
		c := min(m.g.secStart(a>>m.g.secShift+1), e)
		if err := m.sectionActivate(a, c-a, alt); err != mcheck.OK {
			return err
		}
		a = c
	}
	return mcheck.OK
}

func (m *Machine) removePages(a, n int, alt *altmap) {
	for e := a + n; a < e; {
		s := a >> m.g.secShift
		c := min(m.g.secStart(s+1), e)
		if m.secs[s].flags&fHasMap != 0 {
			m.sectionDeactivate(a, c-a, alt)
		}
		a = c
	}
}

// setOnline sets or clears SECTION_IS_ONLINE on the sections touched by [a, b).
func (m *Machine) setOnline(a, b int, on bool) {
	if a >= b {
		return
	}
	for s := a >> m.g.secShift; s <= (b-1)>>m.g.secShift; s++ {
		if on {
			m.secs[s].flags |= fOnline
		} else {
			m.secs[s].flags &^= fOnline
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Zones.

func (m *Machine) growZone(z mcheck.ZoneID, a, n int) {
	zn := &m.zones[z]
	if zn.start == zn.end {
		zn.start, zn.end = a, a+n
		return
	}
	zn.start = min(zn.start, a)
	zn.end = max(zn.end, a+n)
}

// removeFromZone is remove_pfn_range_from_zone (the caller has already re-poisoned the pages).
func (m *Machine) removeFromZone(z mcheck.ZoneID, a, n int) {
	if z == mcheck.ZoneDevice {
		return
	}
	zn := &m.zones[z]
	switch {
	case zn.start == a:
		if q := m.findZonePfn(z, a+n, zn.end, true); q >= 0 {
			zn.start = q
		} else {
			zn.start, zn.end = 0, 0
		}
	case zn.end == a+n:
		if q := m.findZonePfn(z, a, zn.start, false); q >= 0 {
			zn.end = q + 1
		} else {
			zn.start, zn.end = 0, 0
		}
	}
}

// findZonePfn is find_smallest_section_pfn (up: q = from + k*PPSS < to) or
// find_biggest_section_pfn (down: q = from - 1 - k*PPSS, q >= to): the first candidate q with
// online_page(q) whose struct page is in zone z, or -1. Whole offline sections and stretches of
// a block whose pages are in another zone are skipped without visiting their candidates.
func (m *Machine) findZonePfn(z mcheck.ZoneID, from, to int, up bool) int {
	g := m.g
	// next candidate at or after x (up) / at or before x (down)
	nextUp := func(x int) int { return from + alignUp(x-from, g.ppss) }
	nextDown := func(x int) int { return from - 1 - alignUp(from-1-x, g.ppss) }
	q := from
	if !up {
		q = from - 1
	}
	for (up && q < to) || (!up && q >= to) {
		s := q >> g.secShift
		if m.secs[s].flags&fOnline == 0 {
			if up {
				q = nextUp(g.secStart(s + 1))
			} else {
				q = nextDown(g.secStart(s) - 1)
			}
			continue
		}
		b := q / g.bp
		if blk := &m.blocks[b]; blk.exists && !blk.boot {
			// a hot-added block: its pages' zone is constant on the set-aside and on the rest
			lo, hi, init := b*g.bp, b*g.bp+blk.nv, blk.asInit
			if q >= hi {
				lo, hi, init = hi, (b+1)*g.bp, blk.restInit
			}
			if !init || blk.zone != z {
				if up {
					q = nextUp(hi)
				} else {
					q = nextDown(lo - 1)
				}
				continue
			}
		}
		if m.onlinePage(q) && m.pageZone(q) == z {
			return q
		}
		if up {
			q += g.ppss
		} else {
			q -= g.ppss
		}
	}
	return -1
}

// zoneFor is zone_for_pfn_range with the contig-zones policy.
func (m *Machine) zoneFor(t mcheck.OnlineType, b int) mcheck.ZoneID {
	a, e := b*m.g.bp, (b+1)*m.g.bp
	inter := func(z mcheck.ZoneID) bool {
		zn := &m.zones[z]
		return zn.start < zn.end && zn.start < e && a < zn.end
	}
	kz := mcheck.ZoneNormal
	if inter(mcheck.ZoneDMA32) {
		kz = mcheck.ZoneDMA32
	}
	switch t {
	case mcheck.OnlineKernel:
		return kz
	case mcheck.OnlineMovable:
		return mcheck.ZoneMovable
	}
	ik, im := inter(kz), inter(mcheck.ZoneMovable)
	if im && !ik {
		return mcheck.ZoneMovable
	}
	return kz
}
