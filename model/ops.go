package model

import (
	"sort"

	"github.com/mcheck/mcheck"
)

// Apply runs one op to completion, as the kernel does under the hotplug lock.
func (m *Machine) Apply(op mcheck.Op) mcheck.Result {
	m.snap = nil
	return mcheck.Dispatch(m, op)
}

// FailNext arms a one-shot fault (fail_next).
func (m *Machine) FailNext(k mcheck.FaultKind) { m.pending = k }

func res(e mcheck.Errno) mcheck.Result { return mcheck.Result{Errno: e} }

func (m *Machine) block(id int) *block {
	if id < 0 || id >= len(m.blocks) {
		return nil
	}
	return m.blocks[id]
}

func (m *Machine) rangeBusy(a, end int) bool {
	for b := a / m.p.BlockPages(); b*m.p.BlockPages() < end; b++ {
		if m.busy[b] {
			return true
		}
	}
	for _, g := range m.pgmaps {
		if g.start < end && a < g.start+g.n {
			return true
		}
	}
	return false
}

// addMemory is add_memory -> __add_memory -> add_memory_resource (mm/memory_hotplug.c).
func (m *Machine) AddMemory(b, nr int, mmom bool) mcheck.Errno {
	p := m.p
	if nr == 0 {
		return mcheck.EINVAL
	}
	if b+nr > p.NrBlocks() {
		return mcheck.E2BIG // register_memory_resource: beyond the pluggable range
	}
	bp := p.BlockPages()
	start, n := b*bp, nr*bp
	if m.rangeBusy(start, start+n) {
		return mcheck.EEXIST
	}
	var alt *altmap
	if mmom && p.KP() >= mcheck.P1 {
		ok, _ := p.SupportsMemmapOnMemory(nr)
		switch p.KP() {
		case mcheck.P1, mcheck.P2:
			if !ok {
				return mcheck.EINVAL
			}
			alt = &altmap{base: start, end: start + n - 1, free: n}
		case mcheck.P3:
			if ok {
				alt = &altmap{base: start, end: start + n - 1, free: p.MemmapOnMemoryPages()}
			}
		default:
			if ok {
				return m.addPerBlock(b, nr)
			}
		}
	}
	if e := m.addPages(start, n, alt); e != mcheck.OK {
		return e
	}
	// create_memory_block_devices; on failure arch_remove_memory with the same altmap.
	if m.fault(mcheck.FaultBlockDevice) {
		m.removePages(start, n, alt)
		return mcheck.ENOMEM
	}
	for i := b; i < b+nr; i++ {
		blk := &block{state: mcheck.BlockOffline}
		if alt != nil {
			if p.KP() <= mcheck.P2 {
				blk.nrVmemmap = alt.alloc // memory_block.nr_vmemmap_pages
			} else {
				blk.nrVmemmap, blk.altmap = alt.free, alt
			}
		}
		m.blocks[i] = blk
		m.busy[i] = true
	}
	return mcheck.OK
}

// addPerBlock is create_altmaps_and_memory_blocks (6.8+): one altmap per block; any failure
// removes the blocks this call added.
func (m *Machine) addPerBlock(b, nr int) mcheck.Errno {
	p := m.p
	bp := p.BlockPages()
	for i := b; i < b+nr; i++ {
		start := i * bp
		alt := &altmap{base: start, end: start + bp - 1, free: p.MemmapOnMemoryPages()}
		e := m.addPages(start, bp, alt)
		if e == mcheck.OK && m.fault(mcheck.FaultBlockDevice) {
			m.removePages(start, bp, alt)
			e = mcheck.ENOMEM
		}
		if e != mcheck.OK {
			if i > b {
				m.removePerBlock(b, i-b)
			}
			return e
		}
		m.blocks[i] = &block{state: mcheck.BlockOffline, nrVmemmap: alt.free, altmap: alt}
		m.busy[i] = true
	}
	return mcheck.OK
}

// removePerBlock is remove_memory_blocks_and_altmaps: each block with its own altmap, which is
// freed afterwards with a WARN if frames are still accounted to it.
func (m *Machine) removePerBlock(b, nr int) {
	bp := m.p.BlockPages()
	for i := b; i < b+nr; i++ {
		blk := m.blocks[i]
		if blk == nil {
			continue
		}
		alt := blk.altmap
		m.blocks[i] = nil
		m.removePages(i*bp, bp, alt)
		if alt != nil && alt.alloc != 0 {
			m.altmapLeaks++
		}
		m.busy[i] = false
	}
}

// removeMemory is remove_memory -> try_remove_memory.
func (m *Machine) RemoveMemory(b, nr int) mcheck.Errno {
	p := m.p
	if nr == 0 || b+nr > p.NrBlocks() {
		return mcheck.EINVAL
	}
	bp := p.BlockPages()
	for _, g := range m.pgmaps { // modeling choice: remove_memory callers own the range
		if g.start < (b+nr)*bp && b*bp < g.start+g.n {
			return mcheck.EINVAL
		}
	}
	withVmemmap := 0
	for i := b; i < b+nr; i++ { // check_memblock_offlined_cb
		if blk := m.blocks[i]; blk != nil {
			if blk.state != mcheck.BlockOffline {
				return mcheck.EBUSY
			}
			if blk.nrVmemmap > 0 {
				withVmemmap++
			}
		}
	}
	switch {
	case withVmemmap == 0:
		for i := b; i < b+nr; i++ {
			m.blocks[i] = nil
		}
		m.removePages(b*bp, nr*bp, nil)
	case p.KP() <= mcheck.P3:
		if nr != 1 {
			return mcheck.EINVAL // "wrong granularity"
		}
		blk := m.blocks[b]
		alt := blk.altmap
		if alt == nil { // P1/P2: a throw-away altmap carrying nr_vmemmap_pages
			alt = &altmap{base: b * bp, end: b*bp + bp - 1, free: bp, alloc: blk.nrVmemmap}
		}
		m.blocks[b] = nil
		m.removePages(b*bp, bp, alt)
		if p.KP() == mcheck.P3 && alt.alloc != 0 {
			m.altmapLeaks++
		}
	default: // memory_blocks_have_altmaps
		if withVmemmap != nr {
			return mcheck.EINVAL
		}
		m.removePerBlock(b, nr)
	}
	for i := b; i < b+nr; i++ {
		m.busy[i] = false
	}
	return mcheck.OK
}

// online is memory_block_online -> online_pages.
func (m *Machine) Online(id int, t mcheck.OnlineType) mcheck.Errno {
	blk := m.block(id)
	if blk == nil {
		return mcheck.ENOENT
	}
	if blk.state == mcheck.BlockOnline {
		return mcheck.EINVAL
	}
	p := m.p
	start, bp, nv := id*p.BlockPages(), p.BlockPages(), blk.nrVmemmap
	z := m.zoneFor(t, start, bp)
	if nv > 0 { // mhp_init_memmap_on_memory
		m.moveToZone(z, start, nv, mcheck.PageSelfHosted, mcheck.MTUnmovable)
		m.setOnlineInside(start, nv, true)
	}
	a, n := start+nv, bp-nv
	m.moveToZone(z, a, n, mcheck.PagePoisoned, mcheck.MTIsolate)
	if m.fault(mcheck.FaultNotifier) { // MEM_GOING_ONLINE vetoed
		m.removeFromZone(z, a, n)
		if nv > 0 { // mhp_deinit_memmap_on_memory
			m.setOnlineInside(start, nv, false)
			m.removeFromZone(z, start, nv)
		}
		return mcheck.EPERM
	}
	// online_pages_range hands [a, a+n) to the buddy in chunks of order min(MAX_PAGE_ORDER, ctz).
	for pfn := a; pfn < a+n; {
		order := p.MaxOrder
		if pfn != 0 {
			order = min(order, ctz(pfn))
		}
		for q := pfn; q < pfn+1<<order; q++ {
			m.page[q] = mcheck.PageFree
		}
		m.zones[z].managed += 1 << order
		pfn += 1 << order
	}
	m.setOnline(a, n, true)
	m.zones[z].present += n
	pb := p.PageblockPages()
	for pfn := a; pfn < a+n; pfn += pb { // undo_isolate_page_range
		m.mt[pfn/pb] = mcheck.MTMovable
	}
	m.zones[z].present += nv
	blk.state, blk.zone = mcheck.BlockOnline, z
	return mcheck.OK
}

func ctz(x int) int {
	n := 0
	for x&1 == 0 {
		x >>= 1
		n++
	}
	return n
}

// offline is memory_block_offline -> offline_pages.
func (m *Machine) Offline(id int) mcheck.Errno {
	blk := m.block(id)
	if blk == nil {
		return mcheck.ENOENT
	}
	if blk.state != mcheck.BlockOnline {
		return mcheck.EINVAL
	}
	p := m.p
	start, bp, nv, z := id*p.BlockPages(), p.BlockPages(), blk.nrVmemmap, blk.zone
	a, n := start+nv, bp-nv
	for pfn := a; pfn < a+n; pfn++ { // walk_system_ram_range: holes
		if m.page[pfn] == mcheck.PageHole {
			return mcheck.EINVAL
		}
	}
	for pfn := a; pfn < a+n; pfn++ { // start_isolate_page_range: unmovable pages
		if st := m.page[pfn]; st == mcheck.PagePinned || st == mcheck.PageBoot {
			return mcheck.EBUSY
		}
	}
	if m.fault(mcheck.FaultNotifier) { // MEM_GOING_OFFLINE vetoed
		return mcheck.EPERM
	}
	m.migrateFolios(a, a+n)
	m.setOnline(a, n, false) // __offline_isolated_pages
	m.zones[z].managed -= n
	m.zones[z].present -= n + nv
	pb := p.PageblockPages()
	for pfn := a; pfn < a+n; pfn += pb {
		m.mt[pfn/pb] = mcheck.MTIsolate // stays isolated until onlined again
	}
	m.removeFromZone(z, a, n)
	if nv > 0 { // mhp_deinit_memmap_on_memory
		m.setOnlineInside(start, nv, false)
		m.removeFromZone(z, start, nv)
	}
	blk.state, blk.zone = mcheck.BlockOffline, mcheck.ZoneNone
	return mcheck.OK
}

// migrateFolios migrates in-use hugetlb folios in [a, end) away (do_migrate_range): they leave
// the machine; an optimized folio's vmemmap is restored as its source is freed.
func (m *Machine) migrateFolios(a, end int) {
	kept := m.folios[:0]
	for _, f := range m.folios {
		if f.pfn >= a && f.pfn < end {
			m.freeFolio(f)
			continue
		}
		kept = append(kept, f)
	}
	m.folios = kept
}

func (m *Machine) Pin(id int) mcheck.Errno {
	blk := m.block(id)
	if blk == nil {
		return mcheck.ENOENT
	}
	if blk.state != mcheck.BlockOnline || blk.zone == mcheck.ZoneMovable {
		return mcheck.ENOMEM // unmovable allocations never come from ZONE_MOVABLE
	}
	start := id * m.p.BlockPages()
	for pfn := start; pfn < start+m.p.BlockPages(); pfn++ {
		if m.page[pfn] == mcheck.PageFree {
			m.page[pfn] = mcheck.PagePinned
			return mcheck.OK
		}
	}
	return mcheck.ENOMEM
}

func (m *Machine) Unpin(id int) mcheck.Errno {
	if m.block(id) == nil {
		return mcheck.ENOENT
	}
	start := id * m.p.BlockPages()
	for pfn := start; pfn < start+m.p.BlockPages(); pfn++ {
		if m.page[pfn] == mcheck.PagePinned {
			m.page[pfn] = mcheck.PageFree
			return mcheck.OK
		}
	}
	return mcheck.ENOENT
}

func (m *Machine) HugetlbAlloc(id int) mcheck.Errno {
	blk := m.block(id)
	if blk == nil {
		return mcheck.ENOENT
	}
	hp := m.p.HugePages()
	start := id * m.p.BlockPages()
	for f := start; f < start+m.p.BlockPages(); f += hp {
		free := true
		for q := f; q < f+hp && free; q++ {
			free = m.page[q] == mcheck.PageFree
		}
		if free {
			for q := f; q < f+hp; q++ {
				m.page[q] = mcheck.PageHugetlb
			}
			m.folios = append(m.folios, folio{pfn: f})
			sort.Slice(m.folios, func(i, j int) bool { return m.folios[i].pfn < m.folios[j].pfn })
			return mcheck.OK
		}
	}
	return mcheck.ENOMEM
}

func (m *Machine) folioIn(id int, want func(folio) bool) int {
	bp := m.p.BlockPages()
	for i, f := range m.folios {
		if f.pfn/bp == id && want(f) {
			return i
		}
	}
	return -1
}

// hugetlbOptimize is hugetlb_vmemmap_optimize_folio: remap the tail vmemmap pages of the folio
// onto the head's page and free them, unless the vmemmap is self-hosted (vmemmap_should_optimize /
// the PageVmemmapSelfHosted check in the vmemmap walk, 6.0+).
func (m *Machine) HugetlbOptimize(id int) mcheck.Result {
	if !m.p.HVO {
		return res(mcheck.EOPNOTSUPP)
	}
	if m.block(id) == nil {
		return res(mcheck.ENOENT)
	}
	i := m.folioIn(id, func(f folio) bool { return !f.optimized })
	if i < 0 {
		return res(mcheck.ENOENT)
	}
	f := &m.folios[i]
	v0 := m.p.VmemmapPage(f.pfn)
	k := m.p.HugePages() * m.p.StructPageBytes / m.p.PageBytes()
	if head := m.vm[v0]; m.p.KP() >= mcheck.P2 && head.src == mcheck.SrcAltmap && m.page[head.frame] == mcheck.PageSelfHosted {
		return mcheck.Result{Val: 0}
	}
	pmd := m.p.PMDPages()
	for v := v0; v < v0+k; v++ { // split_vmemmap_huge_pmd
		if m.vm[v].size == mcheck.MapPMD {
			u := v / pmd * pmd
			for w := u; w < u+pmd; w++ {
				m.vm[w].size = mcheck.MapBase
			}
		}
	}
	for v := v0 + 1; v < v0+k; v++ {
		m.releaseToBuddy(m.vm[v])
		m.vm[v] = vpage{src: mcheck.SrcHVOShared, size: mcheck.MapBase, frame: int32(v0)}
	}
	f.optimized = true
	return mcheck.Result{Val: 1}
}

// freeFolio returns a folio's pages to the buddy, restoring its vmemmap first
// (hugetlb_vmemmap_restore_folio allocates fresh base pages).
func (m *Machine) freeFolio(f folio) {
	if f.optimized {
		v0 := m.p.VmemmapPage(f.pfn)
		k := m.p.HugePages() * m.p.StructPageBytes / m.p.PageBytes()
		for v := v0 + 1; v < v0+k; v++ {
			m.vm[v] = vpage{src: mcheck.SrcBuddy, size: mcheck.MapBase}
		}
	}
	for q := f.pfn; q < f.pfn+m.p.HugePages(); q++ {
		m.page[q] = mcheck.PageFree
	}
}

func (m *Machine) HugetlbFree(id int) mcheck.Errno {
	if m.block(id) == nil {
		return mcheck.ENOENT
	}
	i := m.folioIn(id, func(folio) bool { return true })
	if i < 0 {
		return mcheck.ENOENT
	}
	m.freeFolio(m.folios[i])
	m.folios = append(m.folios[:i], m.folios[i+1:]...)
	return mcheck.OK
}

// memremap is memremap_pages -> pagemap_range (mm/memremap.c) with an optional driver altmap.
func (m *Machine) Memremap(sub, nr, reserve, free int) mcheck.Errno {
	p := m.p
	if !p.ZoneDevice {
		return mcheck.EOPNOTSUPP
	}
	if nr == 0 {
		return mcheck.EINVAL
	}
	a, n := sub*p.PagesPerSubsection(), nr*p.PagesPerSubsection()
	if a+n > p.NrPfns() || a+n < a {
		return mcheck.E2BIG
	}
	if free == 0 && reserve > 0 {
		return mcheck.EINVAL
	}
	if m.pgmapAt(a) != nil || m.pgmapAt(a+n-1) != nil {
		return mcheck.ENOMEM // get_dev_pagemap: conflicting pgmap
	}
	for pfn := a; pfn < a+n; pfn++ { // region_intersects(System RAM)
		if b := pfn / p.BlockPages(); m.page[pfn] == mcheck.PageBoot || (m.busy[b] && b >= p.BootBlocks) {
			return mcheck.ENXIO
		}
	}
	var alt *altmap
	if free > 0 {
		alt = &altmap{base: a, end: a + n - 1, reserve: reserve, free: free}
	}
	if e := m.addPages(a, n, alt); e != mcheck.OK {
		return e
	}
	// move_pfn_range_to_zone(ZONE_DEVICE): only the altmap window's struct pages; the device pages
	// are initialized by memmap_init_zone_device. Reserve pages stay uninitialized.
	win0, win1 := a, a
	if alt != nil {
		win0, win1 = a+reserve, a+reserve+free
	}
	zz := &m.zones[mcheck.ZoneDevice]
	if zz.end <= zz.start {
		zz.start, zz.end = a, a+n
	} else {
		zz.start, zz.end = min(zz.start, a), max(zz.end, a+n)
	}
	pb := p.PageblockPages()
	for pfn := win0; pfn < a+n; pfn++ {
		st := mcheck.PageDevice
		if pfn < win1 {
			st = mcheck.PageDeviceMemmap
		}
		m.page[pfn], m.pzone[pfn] = st, mcheck.ZoneDevice
		if pfn%pb == 0 {
			m.mt[pfn/pb] = mcheck.MTMovable
		}
	}
	if pps := p.PagesPerSection(); p.ZoneDevice {
		if a%pps != 0 {
			m.sec[p.SectionOf(a)].flags |= mcheck.SectionTaintZoneDevice
		}
		if (a+n)%pps != 0 {
			m.sec[p.SectionOf(a+n)].flags |= mcheck.SectionTaintZoneDevice
		}
	}
	m.pgmaps = append(m.pgmaps, &pgmap{start: a, n: n, altmap: alt})
	sort.Slice(m.pgmaps, func(i, j int) bool { return m.pgmaps[i].start < m.pgmaps[j].start })
	return mcheck.OK
}

// memunmap is memunmap_pages -> pageunmap_range.
func (m *Machine) Memunmap(sub int) mcheck.Errno {
	a := sub * m.p.PagesPerSubsection()
	for i, g := range m.pgmaps {
		if g.start != a {
			continue
		}
		m.removeFromZone(mcheck.ZoneDevice, g.start, g.n)
		m.removePages(g.start, g.n, g.altmap)
		if g.altmap != nil && g.altmap.alloc != 0 {
			m.altmapLeaks++
		}
		m.pgmaps = append(m.pgmaps[:i], m.pgmaps[i+1:]...)
		return mcheck.OK
	}
	return mcheck.ENOENT
}

// allocContig is alloc_contig_range(P, P+N) followed by free_contig_range: isolation of the
// pageblocks around the range must fail on unmovable pages, self-hosted memmap included.
func (m *Machine) AllocContig(pfn, nr int) mcheck.Errno {
	if nr == 0 || pfn+nr > len(m.page) || pfn+nr < pfn {
		return mcheck.EINVAL
	}
	pb := m.p.PageblockPages()
	a, end := pfn/pb*pb, (pfn+nr+pb-1)/pb*pb
	z := m.pzone[a]
	for q := a; q < end; q++ {
		if !m.onlinePage(q) || m.pzone[q] != z {
			return mcheck.EINVAL
		}
	}
	for q := a; q < end; q++ {
		if st := m.page[q]; st == mcheck.PagePinned || st == mcheck.PageBoot || st == mcheck.PageSelfHosted {
			return mcheck.EBUSY
		}
	}
	m.migrateFolios(a, end)
	return mcheck.OK
}

// PfnValid answers pfn_valid(pfn).
func (m *Machine) PfnValid(pfn int) bool { return m.populated(pfn) }

// PfnToOnlinePage answers pfn_to_online_page(pfn) != NULL.
func (m *Machine) PfnToOnlinePage(pfn int) bool { return m.onlinePage(pfn) }
