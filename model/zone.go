package model

import "github.com/mcheck/mcheck"

func (m *Machine) intersects(z mcheck.ZoneID, a, end int) bool {
	zz := m.zones[z]
	return zz.end > zz.start && zz.start < end && a < zz.end
}

// zoneFor is zone_for_pfn_range with the default contig-zones policy and no movable_node
// (mm/memory_hotplug.c): online_kernel takes the first kernel zone the range intersects, else
// Normal; online (auto) takes whichever of kernel zone and Movable the range intersects, if
// exactly one, else the kernel zone.
func (m *Machine) zoneFor(t mcheck.OnlineType, a, n int) mcheck.ZoneID {
	kernel := mcheck.ZoneNormal
	for _, z := range []mcheck.ZoneID{mcheck.ZoneDMA32, mcheck.ZoneNormal} {
		if m.intersects(z, a, a+n) {
			kernel = z
			break
		}
	}
	switch t {
	case mcheck.OnlineKernel:
		return kernel
	case mcheck.OnlineMovable:
		return mcheck.ZoneMovable
	}
	inK, inM := m.intersects(kernel, a, a+n), m.intersects(mcheck.ZoneMovable, a, a+n)
	if inM && !inK {
		return mcheck.ZoneMovable
	}
	return kernel
}

// moveToZone is move_pfn_range_to_zone: grow the zone span (resize_zone_range) and initialize the
// pages' zone and migratetype (memmap_init_range sets it at each pageblock start).
func (m *Machine) moveToZone(z mcheck.ZoneID, a, n int, st mcheck.PageState, mt mcheck.Migratetype) {
	zz := &m.zones[z]
	if zz.end <= zz.start {
		zz.start, zz.end = a, a+n
	} else {
		zz.start, zz.end = min(zz.start, a), max(zz.end, a+n)
	}
	pb := m.p.PageblockPages()
	for pfn := a; pfn < a+n; pfn++ {
		m.page[pfn], m.pzone[pfn] = st, z
		if pfn%pb == 0 {
			m.mt[pfn/pb] = mt
		}
	}
}

// removeFromZone is remove_pfn_range_from_zone: poison the pages, then (not for ZONE_DEVICE)
// shrink_zone_span at the edges using find_smallest/biggest_section_pfn.
func (m *Machine) removeFromZone(z mcheck.ZoneID, a, n int) {
	for pfn := a; pfn < a+n; pfn++ {
		m.page[pfn], m.pzone[pfn] = mcheck.PagePoisoned, mcheck.ZoneNone
	}
	if z == mcheck.ZoneDevice {
		return
	}
	zz := &m.zones[z]
	ppss := m.p.PagesPerSubsection()
	in := func(pfn int) bool { return m.onlinePage(pfn) && m.pzone[pfn] == z }
	switch {
	case zz.start == a:
		for q := a + n; q < zz.end; q += ppss {
			if in(q) {
				zz.start = q
				return
			}
		}
		zz.start, zz.end = 0, 0
	case zz.end == a+n:
		for e := a; e > zz.start; e -= ppss {
			if in(e - 1) {
				zz.end = e
				return
			}
		}
		zz.start, zz.end = 0, 0
	}
}

// setOnline sets or clears SECTION_IS_ONLINE on every section touched by [a, a+n)
// (online_mem_sections / offline_mem_sections).
func (m *Machine) setOnline(a, n int, on bool) {
	if n <= 0 {
		return
	}
	for s := m.p.SectionOf(a); s <= m.p.SectionOf(a+n-1); s++ {
		if on {
			m.sec[s].flags |= mcheck.SectionIsOnline
		} else {
			m.sec[s].flags &^= mcheck.SectionIsOnline
		}
	}
}

// setOnlineInside does the same for sections lying entirely inside [a, a+n)
// (mhp_init/deinit_memmap_on_memory: online_mem_sections(pfn, ALIGN_DOWN(pfn + nr, PPS))).
func (m *Machine) setOnlineInside(a, n int, on bool) {
	pps := m.p.PagesPerSection()
	end := (a + n) / pps * pps
	if end > a {
		m.setOnline(a, end-a, on)
	}
}

// ValidZones is what /sys/devices/system/memory/memoryN/valid_zones prints (drivers/base/memory.c
// valid_zones_show): the zone of an online block, or for an offline one the default (auto) zone
// followed by the kernel and movable choices where they differ. "" if the block does not exist.
func (m *Machine) ValidZones(id int) string {
	blk := m.block(id)
	if blk == nil {
		return ""
	}
	if blk.state == mcheck.BlockOnline {
		return blk.zone.String()
	}
	a, n := id*m.p.BlockPages(), m.p.BlockPages()
	def := m.zoneFor(mcheck.OnlineAuto, a, n)
	out := def.String()
	for _, t := range []mcheck.OnlineType{mcheck.OnlineKernel, mcheck.OnlineMovable} {
		if z := m.zoneFor(t, a, n); z != def {
			out += " " + z.String()
		}
	}
	return out
}
