package impl

import (
	"fmt"

	"github.com/mcheck/mcheck"
)

// Snapshot builds the canonical observable state: O(sections + blocks + pins + folios + pgmaps)
// page runs, word-parallel pageblock runs, and vmemmap runs per mapping unit.
func (m *Machine) Snapshot() *mcheck.Snapshot {
	g := m.g
	s := &mcheck.Snapshot{Pending: m.pending, BadFrees: m.badFrees, AltmapLeaks: m.leaks}
	rb := mcheck.NewRunBuilder(s)
	for i := range m.blocks {
		b := &m.blocks[i]
		if !b.exists {
			continue
		}
		bs := mcheck.BlockSnap{ID: i, State: mcheck.BlockOffline, Boot: b.boot, NrVmemmap: b.nv}
		if b.online {
			bs.State = mcheck.BlockOnline
			bs.Zone = b.zone
		}
		if b.hasAlt {
			bs.Altmap = b.alt.snap()
		}
		s.Blocks = append(s.Blocks, bs)
	}
	s.Sections = make([]mcheck.SectionSnap, g.nSecs)
	for i := range m.secs {
		sec := &m.secs[i]
		s.Sections[i] = mcheck.SectionSnap{Flags: sec.flags, Usage: sec.usage, SubMap: sec.submap}
	}
	for z := range m.zones {
		zn := &m.zones[z]
		s.Zones[z] = mcheck.ZoneSnap{Present: zn.present, Managed: zn.managed, Start: zn.start, End: zn.end, NrIsolate: zn.nrIsolate}
	}
	for p := 0; p < g.nPfns; {
		st, z, e := m.pageRun(p)
		e = min(e, g.nPfns)
		rb.Pages(p, e-p, st, z)
		p = e
	}
	// Pageblocks: a whole word of equal nibbles is one step.
	for sn := range m.secs {
		base := sn * g.pbPerSec
		if !m.secs[sn].usage {
			rb.Pageblocks(base, g.pbPerSec, mcheck.MTNone)
			continue
		}
		for j := 0; j < g.pbPerSec; {
			w := m.pb[sn*g.pbWords+j>>4]
			if j&15 == 0 && g.pbPerSec-j >= 16 && w == (w&15)*0x1111111111111111 {
				rb.Pageblocks(base+j, 16, mtSnap(w&15))
				j += 16
				continue
			}
			rb.Pageblocks(base+j, 1, mtSnap(w>>(uint(j&15)*4)&15))
			j++
		}
	}
	for u := range m.units {
		un := &m.units[u]
		v0 := u * g.pmdPages
		switch un.kind {
		case unitPMD:
			rb.Vmemmap(v0, g.pmdPages, mcheck.FrameSource(un.pmd.src), mcheck.MapPMD, int(un.pmd.frame), int(un.pmd.alt))
		case unitTable:
			tab := m.table(u)
			for i := 0; i < len(tab); {
				e := tab[i]
				j := i + 1
				for ; j < len(tab); j++ {
					f := tab[j]
					step := int32(0)
					if e.src == srcAltmap {
						step = int32(j - i)
					}
					if f.src != e.src || f.alt != e.alt || f.frame != e.frame+step {
						break
					}
				}
				rb.Vmemmap(v0+i, j-i, mcheck.FrameSource(e.src), mcheck.MapBase, int(e.frame), int(e.alt))
				i = j
			}
		}
	}
	if g.slots > 0 {
		for b := range m.blocks {
			fw, ow := m.folioWords(b)
			for sl := nextBit(fw, 0, g.slots); sl >= 0; sl = nextBit(fw, sl+1, g.slots) {
				s.Folios = append(s.Folios, mcheck.Folio{Pfn: b*g.bp + sl*g.hugePages, Optimized: ow[sl>>6]>>uint(sl&63)&1 != 0})
			}
		}
	}
	for i := range m.pgmaps {
		pg := &m.pgmaps[i]
		ps := mcheck.PgmapSnap{Start: pg.start, N: pg.n}
		if pg.hasAlt {
			ps.Altmap = pg.alt.snap()
		}
		s.Pgmaps = append(s.Pgmaps, ps)
	}
	return s
}

// Check reports the implementation's own inconsistencies: counters against bitmaps, section
// words against usage maps, altmap accounting against the frames mapped from it, and sticky
// notes (struct pages read without a vmemmap frame). nil when consistent.
func (m *Machine) Check() []string {
	g := m.g
	out := append([]string(nil), m.notes...)
	add := func(format string, a ...any) {
		if len(out) < 32 {
			out = append(out, fmt.Sprintf(format, a...))
		}
	}
	// Sections.
	for i := range m.secs {
		sec := &m.secs[i]
		has := sec.flags&fHasMap != 0
		switch {
		case sec.flags>>mcheck.SectionMapLastBit != 0:
			add("section %d: flag bits beyond SECTION_MAP_LAST_BIT: %#x", i, sec.flags)
		case sec.submap.AnyInRange(g.subPerSec, mcheck.MaxSubsections):
			add("section %d: subsection map %s has bits beyond the section", i, sec.submap)
		case has != !sec.submap.IsZero():
			add("section %d: HAS_MEM_MAP=%v but subsection map %s", i, has, sec.submap)
		case has && !sec.usage:
			add("section %d: HAS_MEM_MAP without usage", i)
		case sec.usage && !sec.bootUsage && sec.submap.IsZero():
			add("section %d: usage allocated with an empty subsection map", i)
		case (sec.flags&fPresent != 0) != has:
			add("section %d: PRESENT=%v HAS_MEM_MAP=%v", i, sec.flags&fPresent != 0, has)
		case sec.flags&(fOnline|fTaint|fEarly) != 0 && !has:
			add("section %d: flags %#x without a memmap", i, sec.flags)
		case sec.flags&fEarly != 0 && !sec.bootUsage:
			add("section %d: EARLY without a boot usage", i)
		}
	}
	// Blocks against zones and sections.
	var present, managed [mcheck.NrZones]int
	present[mcheck.ZoneDMA32] += g.bootRAM
	managed[mcheck.ZoneDMA32] += g.bootRAM
	for b := range m.blocks {
		blk := &m.blocks[b]
		start := b * g.bp
		if !blk.exists {
			if blk.busy {
				add("block %d: resource busy without a block device", b)
			}
			continue
		}
		if blk.boot {
			continue
		}
		if !blk.busy {
			add("block %d: device without a busy resource", b)
		}
		if blk.online {
			present[blk.zone] += g.bp
			managed[blk.zone] += g.bp - blk.nv
			if (blk.nv > 0 && !blk.asInit) || !blk.restInit {
				add("block %d: online but pages not initialized", b)
			}
		} else if blk.asInit || blk.restInit || blk.zone != mcheck.ZoneNone {
			add("block %d: offline but pages initialized (zone %s)", b, blk.zone)
		}
		for s := start >> g.secShift; s < (start+g.bp)>>g.secShift; s++ {
			sec := &m.secs[s]
			if sec.submap != g.fullMask {
				add("block %d: section %d subsection map %s not full", b, s, sec.submap)
			}
			ss := g.secStart(s)
			inAside := ss+g.pps <= start+blk.nv
			if on := sec.flags&fOnline != 0; on != blk.online && !(inAside && !blk.online && !on) {
				add("block %d (%s): section %d ONLINE=%v", b, map[bool]string{true: "online", false: "offline"}[blk.online], s, on)
			}
		}
		if !blk.online {
			fw, _ := m.folioWords(b)
			if g.slots > 0 && nextBit(fw, 0, g.slots) >= 0 {
				add("block %d: offline with hugetlb folios", b)
			}
			if i := m.pinIndex(start); i < len(m.pins) && int(m.pins[i]) < start+g.bp {
				add("block %d: offline with pinned pages", b)
			}
		}
	}
	for z := range m.zones {
		zn := &m.zones[z]
		if mcheck.ZoneID(z) != mcheck.ZoneDevice && (zn.present != present[z] || zn.managed != managed[z]) {
			add("zone %s: present=%d managed=%d, online blocks account for present=%d managed=%d",
				mcheck.ZoneID(z), zn.present, zn.managed, present[z], managed[z])
		}
		if zn.nrIsolate != 0 {
			add("zone %s: nr_isolate_pageblock=%d after the op", mcheck.ZoneID(z), zn.nrIsolate)
		}
		if zn.start > zn.end {
			add("zone %s: span [%#x, %#x) inverted", mcheck.ZoneID(z), zn.start, zn.end)
		}
	}
	m.checkAltmaps(add)
	// Every populated pfn has its vmemmap mapped.
	for s := range m.secs {
		sec := &m.secs[s]
		if sec.flags&fHasMap == 0 {
			continue
		}
		ss := g.secStart(s)
		for i := 0; i < g.subPerSec; i++ {
			if sec.flags&fEarly == 0 && !sec.submap.Test(i) {
				continue
			}
			a := ss + i*g.ppss
			for v := g.vOf(a); v < g.vEnd(a+g.ppss); v++ {
				if !m.vMapped(v) {
					add("pfn %#x is valid but its vmemmap page %d is not mapped", a, v)
					break
				}
			}
		}
	}
	// Folios only over free-able pages of online blocks; pins sorted and inside online blocks.
	for i := 1; i < len(m.pins); i++ {
		if m.pins[i-1] >= m.pins[i] {
			add("pins not sorted at %d", i)
		}
	}
	for _, p := range m.pins {
		b := int(p) / g.bp
		blk := &m.blocks[b]
		if !blk.exists || !blk.online || int(p) < b*g.bp+blk.nv {
			add("pin %#x outside the usable pages of an online block", p)
		}
	}
	return out
}

// checkAltmaps compares the live altmaps' counters with the frames mapped from them (one pass
// over the vmemmap).
func (m *Machine) checkAltmaps(add func(string, ...any)) {
	g := m.g
	type acct struct {
		what   string
		a      *altmap
		mapped int
	}
	live := map[int32]*acct{}
	for b := range m.blocks {
		if blk := &m.blocks[b]; blk.exists && blk.hasAlt {
			live[int32(blk.alt.base)] = &acct{what: fmt.Sprintf("block %d altmap", b), a: &blk.alt}
		}
	}
	for i := range m.pgmaps {
		if pg := &m.pgmaps[i]; pg.hasAlt {
			live[int32(pg.alt.base)] = &acct{what: fmt.Sprintf("pgmap %#x altmap", pg.start), a: &pg.alt}
		}
	}
	if len(live) == 0 {
		return
	}
	frame := func(e pte, n int) {
		if e.src != srcAltmap {
			return
		}
		ac := live[e.alt]
		if ac == nil {
			return
		}
		ac.mapped += n
		a := ac.a
		if f := int(e.frame); f < a.base+a.reserve || f+n > a.base+a.reserve+a.free {
			add("%s: frame %#x (+%d) outside the window", ac.what, f, n)
		}
	}
	for u := range m.units {
		switch m.units[u].kind {
		case unitPMD:
			frame(m.units[u].pmd, g.pmdPages)
		case unitTable:
			for _, e := range m.table(u) {
				frame(e, 1)
			}
		}
	}
	for _, ac := range live {
		a := ac.a
		if a.alloc < 0 || a.align < 0 {
			add("%s: negative counters alloc=%d align=%d", ac.what, a.alloc, a.align)
		}
		if a.alloc+a.align > a.free {
			add("%s: alloc %d + align %d exceed free %d", ac.what, a.alloc, a.align, a.free)
		}
		if m.badFrees == 0 && ac.mapped != a.alloc {
			add("%s: alloc=%d but %d vmemmap pages are mapped from it", ac.what, a.alloc, ac.mapped)
		}
	}
}
