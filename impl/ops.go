package impl

import (
	"math/bits"

	"github.com/mcheck/mcheck"
)

// Apply runs one op to completion, as the kernel does under the hotplug lock.
func (m *Machine) Apply(op mcheck.Op) mcheck.Result {
	return mcheck.Dispatch(m, op)
}

// FailNext arms a one-shot fault (fail_next).
func (m *Machine) FailNext(k mcheck.FaultKind) { m.pending = k }

func res(e mcheck.Errno) mcheck.Result { return mcheck.Result{Errno: e} }

// blk returns the block device with id b, or nil.
func (m *Machine) blk(b int) *block {
	if b < 0 || b >= m.g.nBlocks || !m.blocks[b].exists {
		return nil
	}
	return &m.blocks[b]
}

func (m *Machine) supportsMMOM(n int) bool {
	if n == 1 {
		return m.g.sup1
	}
	return m.g.supN
}

// ---------------------------------------------------------------------------------------------
// add_memory / remove_memory.

func (m *Machine) AddMemory(B, N int, mmom bool) mcheck.Errno {
	g := m.g
	if N == 0 {
		return mcheck.EINVAL
	}
	if B+N > g.nBlocks {
		return mcheck.E2BIG
	}
	start, n := B*g.bp, N*g.bp
	for b := B; b < B+N; b++ {
		if m.blocks[b].busy {
			return mcheck.EEXIST
		}
	}
	for i := range m.pgmaps {
		if pg := &m.pgmaps[i]; pg.start < start+n && start < pg.start+pg.n {
			return mcheck.EEXIST
		}
	}
	const (
		none = iota
		single
		perBlock
	)
	how := none
	if mmom && g.kp >= mcheck.P1 {
		ok := m.supportsMMOM(N)
		switch g.kp {
		case mcheck.P1, mcheck.P2:
			if !ok {
				return mcheck.EINVAL
			}
			how = single
		case mcheck.P3:
			if ok {
				how = single
			}
		default:
			if ok {
				how = perBlock
			}
		}
	}
	if how == perBlock {
		for i := B; i < B+N; i++ {
			a := altmap{base: i * g.bp, end: (i+1)*g.bp - 1, free: g.mmomPages}
			if err := m.addPages(i*g.bp, g.bp, &a); err != mcheck.OK {
				m.undoPerBlock(B, i)
				return err
			}
			if m.fault(mcheck.FaultBlockDevice) {
				undo := &a
				if m.f.blockDeviceErrorDropsAlt {
					undo = nil // the 6.8 error path
				}
				m.removePages(i*g.bp, g.bp, undo)
				m.undoPerBlock(B, i)
				return mcheck.ENOMEM
			}
			m.blocks[i] = block{exists: true, hasAlt: true, alt: a, nv: a.free}
		}
	} else {
		var alt *altmap
		var a altmap
		if how == single {
			a = altmap{base: start, end: start + n - 1, free: g.mmomPages}
			if g.kp <= mcheck.P2 {
				a.free = n
			}
			alt = &a
		}
		if err := m.addPages(start, n, alt); err != mcheck.OK {
			return err
		}
		if m.fault(mcheck.FaultBlockDevice) {
			m.removePages(start, n, alt)
			return mcheck.ENOMEM
		}
		for b := B; b < B+N; b++ {
			blk := block{exists: true}
			if alt != nil {
				if g.kp <= mcheck.P2 {
					blk.nv = a.alloc
				} else {
					blk.nv = a.free
					blk.hasAlt = true
					blk.alt = a
				}
			}
			m.blocks[b] = blk
		}
	}
	for b := B; b < B+N; b++ {
		m.blocks[b].busy = true
	}
	return mcheck.OK
}

// undoPerBlock removes the blocks [B, i) created by this add (remove_memory_blocks_and_altmaps).
func (m *Machine) undoPerBlock(B, i int) {
	g := m.g
	for j := B; j < i; j++ {
		a := m.blocks[j].alt
		m.blocks[j] = block{}
		m.removePages(j*g.bp, g.bp, &a)
	}
}

func (m *Machine) RemoveMemory(B, N int) mcheck.Errno {
	g := m.g
	if N == 0 || B+N > g.nBlocks {
		return mcheck.EINVAL
	}
	for i := range m.pgmaps {
		if pg := &m.pgmaps[i]; pg.start < (B+N)*g.bp && B*g.bp < pg.start+pg.n {
			return mcheck.EINVAL
		}
	}
	existing, withAlt, withNv := 0, 0, 0
	for b := B; b < B+N; b++ {
		blk := &m.blocks[b]
		if !blk.exists {
			continue
		}
		if blk.online {
			return mcheck.EBUSY
		}
		existing++
		if blk.hasAlt {
			withAlt++
		}
		if blk.nv > 0 {
			withNv++
		}
	}
	perBlock := false
	switch {
	case g.kp >= mcheck.P1 && g.kp <= mcheck.P3:
		if withNv > 0 && N != 1 {
			return mcheck.EINVAL
		}
		perBlock = withNv > 0
	case g.kp >= mcheck.P4:
		// memory_blocks_have_altmaps: none -> normal path, all N -> per block, else EINVAL
		if withAlt > 0 && withAlt != N {
			return mcheck.EINVAL
		}
		perBlock = withAlt > 0
	}
	if perBlock {
		for b := B; b < B+N; b++ {
			blk := m.blocks[b]
			if !blk.exists || (g.kp >= mcheck.P4 && !blk.hasAlt) || (g.kp < mcheck.P4 && blk.nv == 0) {
				continue
			}
			start := b * g.bp
			var a altmap
			if g.kp <= mcheck.P2 {
				a = altmap{base: start, end: start + g.bp - 1, free: g.bp, alloc: blk.nv}
			} else {
				a = blk.alt
			}
			m.blocks[b] = block{busy: blk.busy}
			alt := &a
			if m.f.removeDropsAltmap {
				alt = nil
			}
			m.removePages(start, g.bp, alt)
			if g.kp >= mcheck.P3 && a.alloc != 0 {
				m.leaks++ // "Altmap not fully unmapped"
			}
		}
	} else {
		for b := B; b < B+N; b++ {
			if m.blocks[b].exists {
				m.blocks[b] = block{busy: m.blocks[b].busy}
			}
		}
		m.removePages(B*g.bp, N*g.bp, nil)
	}
	for b := B; b < B+N; b++ {
		m.blocks[b].busy = false
	}
	return mcheck.OK
}

// ---------------------------------------------------------------------------------------------
// online / offline.

func (m *Machine) Online(b int, t mcheck.OnlineType) mcheck.Errno {
	g := m.g
	blk := m.blk(b)
	if blk == nil {
		return mcheck.ENOENT
	}
	if blk.online {
		return mcheck.EINVAL
	}
	z := m.zoneFor(t, b)
	nv := blk.nv
	start, end := b*g.bp, (b+1)*g.bp
	asEnd := alignDown(start+nv, g.pps) // sections entirely inside the set-aside end here
	blk.zone = z
	if nv > 0 {
		m.growZone(z, start, nv)
		m.setPB(start, start+nv, mtUnmovable)
		blk.asInit = true
		m.setOnline(start, asEnd, true)
	}
	// online_pages
	m.growZone(z, start+nv, g.bp-nv)
	m.setPB(start+nv, end, mtIsolate)
	blk.restInit = true
	if m.fault(mcheck.FaultNotifier) {
		blk.restInit = false
		m.removeFromZone(z, start+nv, g.bp-nv)
		if nv > 0 {
			m.setOnline(start, asEnd, false)
			blk.asInit = false
			m.removeFromZone(z, start, nv)
		}
		blk.zone = mcheck.ZoneNone
		return mcheck.EPERM
	}
	zn := &m.zones[z]
	zn.nrIsolate += (g.bp - nv) / g.pbPages // fixed up before onlining (undo_isolate_page_range)
	zn.managed += g.bp - nv                 // online_pages_range: the chunks go to the buddy
	m.setOnline(start+nv, end, true)
	zn.present += g.bp - nv
	m.setPB(start+nv, end, mtMovable)
	zn.nrIsolate -= (g.bp - nv) / g.pbPages
	if !m.f.onlineSkipsVmemmapPresent {
		zn.present += nv
	}
	blk.online = true
	return mcheck.OK
}

func (m *Machine) Offline(b int) mcheck.Errno {
	g := m.g
	blk := m.blk(b)
	if blk == nil {
		return mcheck.ENOENT
	}
	if !blk.online {
		return mcheck.EINVAL
	}
	nv := blk.nv
	start, end := b*g.bp, (b+1)*g.bp
	busy := false
	for p := start + nv; p < end; {
		m.readPage(p)
		st, _, e := m.pageRun(p)
		switch st {
		case mcheck.PageHole:
			return mcheck.EINVAL
		case mcheck.PagePinned, mcheck.PageBoot:
			busy = true
		}
		p = e
	}
	if busy {
		return mcheck.EBUSY
	}
	if m.fault(mcheck.FaultNotifier) {
		return mcheck.EPERM
	}
	z := blk.zone
	m.migrateFolios(b, 0, g.slots)
	m.setOnline(start+nv, end, false)
	zn := &m.zones[z]
	zn.present -= nv
	zn.managed -= g.bp - nv
	zn.present -= g.bp - nv
	m.setPB(start+nv, end, mtIsolate)
	blk.restInit = false
	m.removeFromZone(z, start+nv, g.bp-nv)
	if nv > 0 {
		m.setOnline(start, alignDown(start+nv, g.pps), false)
		blk.asInit = false
		m.removeFromZone(z, start, nv)
	}
	blk.online = false
	blk.zone = mcheck.ZoneNone
	return mcheck.OK
}

// ---------------------------------------------------------------------------------------------
// pins and hugetlb.

func (m *Machine) folioWords(b int) ([]uint64, []uint64) {
	w := m.g.slotWords
	return m.folio[b*w : (b+1)*w], m.opt[b*w : (b+1)*w]
}

// lowestFree is the block's lowest free page, or -1.
func (m *Machine) lowestFree(b int) int {
	g := m.g
	blk := &m.blocks[b]
	start, end := b*g.bp, (b+1)*g.bp
	fw, _ := m.folioWords(b)
	p := start + blk.nv
	i := m.pinIndex(p)
	for p < end {
		if g.slots > 0 {
			if s := (p - start) / g.hugePages; s < g.slots && fw[s>>6]>>uint(s&63)&1 != 0 {
				p = start + (s+1)*g.hugePages
				continue
			}
		}
		for i < len(m.pins) && int(m.pins[i]) < p {
			i++
		}
		if i < len(m.pins) && int(m.pins[i]) == p {
			p++
			continue
		}
		return p
	}
	return -1
}

func (m *Machine) Pin(b int) mcheck.Errno {
	blk := m.blk(b)
	if blk == nil {
		return mcheck.ENOENT
	}
	if !blk.online || blk.zone == mcheck.ZoneMovable || blk.boot {
		return mcheck.ENOMEM
	}
	p := m.lowestFree(b)
	if p < 0 {
		return mcheck.ENOMEM
	}
	i := m.pinIndex(p)
	m.pins = append(m.pins, 0)
	copy(m.pins[i+1:], m.pins[i:])
	m.pins[i] = int32(p)
	return mcheck.OK
}

func (m *Machine) Unpin(b int) mcheck.Errno {
	if m.blk(b) == nil {
		return mcheck.ENOENT
	}
	start := b * m.g.bp
	i := m.pinIndex(start)
	if i >= len(m.pins) || int(m.pins[i]) >= start+m.g.bp {
		return mcheck.ENOENT
	}
	m.pins = append(m.pins[:i], m.pins[i+1:]...)
	return mcheck.OK
}

func (m *Machine) HugetlbAlloc(b int) mcheck.Errno {
	g := m.g
	blk := m.blk(b)
	if blk == nil {
		return mcheck.ENOENT
	}
	if !blk.online || blk.boot || g.slots == 0 {
		return mcheck.ENOMEM
	}
	start := b * g.bp
	fw, _ := m.folioWords(b)
	// busy slots: folios | pins | set-aside; word-parallel search for the lowest free one.
	var busyBuf [4]uint64
	busy := busyBuf[:0]
	if g.slotWords > len(busyBuf) {
		busy = make([]uint64, 0, g.slotWords)
	}
	busy = append(busy, fw...)
	for s := 0; s < (blk.nv+g.hugePages-1)/g.hugePages; s++ {
		busy[s>>6] |= 1 << uint(s&63)
	}
	for i := m.pinIndex(start); i < len(m.pins) && int(m.pins[i]) < start+g.bp; i++ {
		s := (int(m.pins[i]) - start) / g.hugePages
		busy[s>>6] |= 1 << uint(s&63)
	}
	for w := range busy {
		free := ^busy[w]
		if n := g.slots - w*64; n < 64 {
			free &= 1<<uint(n) - 1
		}
		if free != 0 {
			s := w*64 + bits.TrailingZeros64(free)
			fw[s>>6] |= 1 << uint(s&63)
			return mcheck.OK
		}
	}
	return mcheck.ENOMEM
}

func (m *Machine) HugetlbOptimize(b int) mcheck.Result {
	g := m.g
	if !g.p.HVO {
		return res(mcheck.EOPNOTSUPP)
	}
	if m.blk(b) == nil {
		return res(mcheck.ENOENT)
	}
	fw, ow := m.folioWords(b)
	s := -1
	for w := range fw {
		if x := fw[w] &^ ow[w]; x != 0 {
			s = w*64 + bits.TrailingZeros64(x)
			break
		}
	}
	if s < 0 {
		return res(mcheck.ENOENT)
	}
	f := b*g.bp + s*g.hugePages
	if g.kp >= mcheck.P2 && !m.f.hvoIgnoresSelfHosted {
		// vmemmap_should_optimize: the head's vmemmap frame is self-hosted -> skip
		if e := m.frameAt(g.vOf(f)); e.src == srcAltmap {
			m.readPage(int(e.frame))
			if st, _, _ := m.pageRun(int(e.frame)); st == mcheck.PageSelfHosted {
				return mcheck.Result{Val: 0}
			}
		}
	}
	m.hvoOptimize(f)
	ow[s>>6] |= 1 << uint(s&63)
	return mcheck.Result{Val: 1}
}

// dropFolio removes folio slot s of block b, restoring its vmemmap if optimized.
func (m *Machine) dropFolio(b, s int) {
	fw, ow := m.folioWords(b)
	if ow[s>>6]>>uint(s&63)&1 != 0 {
		m.hvoRestore(b*m.g.bp + s*m.g.hugePages)
	}
	fw[s>>6] &^= 1 << uint(s&63)
	ow[s>>6] &^= 1 << uint(s&63)
}

// migrateFolios migrates away the folios of block b in slots [s0, s1).
func (m *Machine) migrateFolios(b, s0, s1 int) {
	if m.g.slots == 0 {
		return
	}
	fw, _ := m.folioWords(b)
	for s := nextBit(fw, s0, s1); s >= 0; s = nextBit(fw, s+1, s1) {
		m.dropFolio(b, s)
	}
}

func (m *Machine) HugetlbFree(b int) mcheck.Errno {
	if m.blk(b) == nil || m.g.slots == 0 {
		return mcheck.ENOENT
	}
	fw, _ := m.folioWords(b)
	s := nextBit(fw, 0, m.g.slots)
	if s < 0 {
		return mcheck.ENOENT
	}
	m.dropFolio(b, s)
	return mcheck.OK
}

// ---------------------------------------------------------------------------------------------
// ZONE_DEVICE.

func (m *Machine) Memremap(S, N, R, F int) mcheck.Errno {
	g := m.g
	if !g.p.ZoneDevice {
		return mcheck.EOPNOTSUPP
	}
	if N == 0 {
		return mcheck.EINVAL
	}
	a, n := S*g.ppss, N*g.ppss
	if a+n > g.nPfns {
		return mcheck.E2BIG
	}
	if F == 0 && R > 0 {
		return mcheck.EINVAL
	}
	if m.pgmapAt(a) != nil || m.pgmapAt(a+n-1) != nil {
		return mcheck.ENOMEM
	}
	if a < g.bootRAM {
		return mcheck.ENXIO
	}
	for b := a / g.bp; b <= (a+n-1)/g.bp; b++ {
		if m.blocks[b].busy && !m.blocks[b].boot {
			return mcheck.ENXIO
		}
	}
	pg := pgmap{start: a, n: n}
	var alt *altmap
	if F > 0 {
		pg.hasAlt = true
		pg.alt = altmap{base: a, end: a + n - 1, reserve: R, free: F}
		alt = &pg.alt
	}
	if err := m.addPages(a, n, alt); err != mcheck.OK {
		return err
	}
	m.growZone(mcheck.ZoneDevice, a, n)
	init := a
	if F > 0 {
		init = a + R
	}
	m.setPB(init, a+n, mtMovable)
	if a&(g.pps-1) != 0 {
		m.secs[a>>g.secShift].flags |= fTaint
	}
	if (a+n)&(g.pps-1) != 0 {
		m.secs[(a+n)>>g.secShift].flags |= fTaint
	}
	i := 0
	for i < len(m.pgmaps) && m.pgmaps[i].start <= a {
		i++
	}
	m.pgmaps = append(m.pgmaps, pgmap{})
	copy(m.pgmaps[i+1:], m.pgmaps[i:])
	m.pgmaps[i] = pg
	return mcheck.OK
}

func (m *Machine) Memunmap(S int) mcheck.Errno {
	g := m.g
	a := S * g.ppss
	i := 0
	for i < len(m.pgmaps) && m.pgmaps[i].start != a {
		i++
	}
	if i == len(m.pgmaps) || S >= g.nPfns/g.ppss {
		return mcheck.ENOENT
	}
	pg := m.pgmaps[i]
	m.pgmaps = append(m.pgmaps[:i], m.pgmaps[i+1:]...)
	// pages -> poisoned: early (boot hole) subsections keep poisoned struct pages
	if hs := g.holeSec; hs >= 0 {
		ss := g.secStart(hs)
		lo, hi := max(pg.start, ss), min(pg.start+pg.n, ss+g.pps)
		if lo < hi {
			m.holeDirty.SetRange(g.subRange(lo, hi))
		}
	}
	var alt *altmap
	if pg.hasAlt {
		alt = &pg.alt
	}
	m.removePages(pg.start, pg.n, alt)
	if pg.hasAlt && pg.alt.alloc != 0 {
		m.leaks++
	}
	return mcheck.OK
}

// ---------------------------------------------------------------------------------------------
// alloc_contig_range.

func (m *Machine) AllocContig(P, N int) mcheck.Errno {
	g := m.g
	if N == 0 || P+N > g.nPfns {
		return mcheck.EINVAL
	}
	lo, hi := alignDown(P, g.pbPages), alignUp(P+N, g.pbPages)
	// every pfn must be an online page: per section, word-parallel
	for a := lo; a < hi; {
		s := a >> g.secShift
		e := min(g.secStart(s+1), hi)
		sec := &m.secs[s]
		if sec.flags&fOnline == 0 || !sec.submap.AllInRange(g.subRange(a, e)) {
			return mcheck.EINVAL
		}
		if sec.flags&fTaint != 0 {
			for q := a; q < e; q = alignDown(q, g.ppss) + g.ppss {
				if m.pgmapAt(q) != nil {
					return mcheck.EINVAL
				}
			}
		}
		a = e
	}
	z0 := mcheck.NrZones
	busy := false
	for p := lo; p < hi; {
		m.readPage(p)
		st, z, e := m.pageRun(p)
		if z0 == mcheck.NrZones {
			z0 = z
		} else if z != z0 {
			return mcheck.EINVAL
		}
		if st == mcheck.PagePinned || st == mcheck.PageBoot || st == mcheck.PageSelfHosted {
			busy = true
		}
		p = min(e, hi)
	}
	if busy {
		return mcheck.EBUSY
	}
	if g.slots > 0 {
		for b := lo / g.bp; b <= (hi-1)/g.bp; b++ {
			if blk := &m.blocks[b]; !blk.exists || blk.boot {
				continue
			}
			start := b * g.bp
			s0 := max(lo-start, 0) / g.hugePages
			s1 := min((min(hi, start+g.bp)-start+g.hugePages-1)/g.hugePages, g.slots)
			m.migrateFolios(b, s0, s1)
		}
	}
	return mcheck.OK
}

// PfnValid answers pfn_valid(pfn).
func (m *Machine) PfnValid(pfn int) bool { return pfn < m.g.nPfns && m.populated(pfn) }

// PfnToOnlinePage answers pfn_to_online_page(pfn) != NULL.
func (m *Machine) PfnToOnlinePage(pfn int) bool { return pfn < m.g.nPfns && m.onlinePage(pfn) }
