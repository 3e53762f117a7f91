// Package impl is the optimized implementation of the memory-hotplug machine. It stores the
// machine the way the kernel does: per-section flag words (kernel bit order) with a usage map
// (subsection bitmap plus the pageblock migratetype nibbles), vmem_altmap structs with the
// kernel's arithmetic, the vmemmap as PMD-sized mapping units (a PMD entry or a table of base-page
// entries) with the source of every frame, memory blocks, zones, dev_pagemaps, hugetlb folio and
// pin sets. Page states are never stored per pfn: they are derived from (section bitmaps, block
// phase, set-aside length, pins, folio bitmap, pgmaps), so every op costs O(sections + blocks +
// pins + folios), independent of the number of pages.
//
// docs/semantics.md is the specification; impl is written independently of model/.
package impl

import (
	"fmt"
	"math/bits"
	"sort"
	"unsafe"

	"github.com/mcheck/mcheck"
)

// ---------------------------------------------------------------------------------------------
// Named faults: deliberate deviations on the code path where the kernel had a bug.

type faults struct {
	hvoIgnoresSelfHosted      bool
	removeDropsAltmap         bool
	onlineSkipsVmemmapPresent bool
	blockDeviceErrorDropsAlt  bool
}

var faultTable = []struct {
	name string
	help string
	set  func(*faults)
}{
	{"hvo-ignores-self-hosted",
		"HVO does not skip folios whose vmemmap is self-hosted (pre-6.0 vmemmap_should_optimize): altmap frames are freed to the buddy",
		func(f *faults) { f.hvoIgnoresSelfHosted = true }},
	{"remove-drops-altmap",
		"remove_memory's per-block path passes a nil altmap to remove_pages: self-hosted vmemmap frames go to the buddy",
		func(f *faults) { f.removeDropsAltmap = true }},
	{"online-skips-vmemmap-present",
		"memory_block_online forgets adjust_present_page_count(+nr_vmemmap_pages) after online_pages",
		func(f *faults) { f.onlineSkipsVmemmapPresent = true }},
	{"block-device-error-drops-altmap",
		"create_altmaps_and_memory_blocks (6.8) undoes a block whose device registration failed with arch_remove_memory(.., NULL): its self-hosted frames go to the buddy",
		func(f *faults) { f.blockDeviceErrorDropsAlt = true }},
}

// FaultNames lists the named fault switches.
func FaultNames() []string {
	out := make([]string, len(faultTable))
	for i, f := range faultTable {
		out[i] = f.name
	}
	return out
}

// FaultHelp returns the one-line description of a named fault ("" if unknown).
func FaultHelp(name string) string {
	for _, f := range faultTable {
		if f.name == name {
			return f.help
		}
	}
	return ""
}

// ---------------------------------------------------------------------------------------------
// State.

// altmap is struct vmem_altmap (end inclusive). Counters may go negative in a buggy machine.
type altmap struct {
	base, end, reserve, free, align, alloc int
}

func (a *altmap) nextPfn() int { return a.base + a.reserve + a.alloc + a.align }

func (a *altmap) nrFree() int {
	if n := a.free - (a.alloc + a.align); n > 0 {
		return n
	}
	return 0
}

func (a *altmap) snap() *mcheck.AltmapSnap {
	return &mcheck.AltmapSnap{BasePfn: a.base, EndPfn: a.end, Reserve: a.reserve, Free: a.free, Align: a.align, Alloc: a.alloc}
}

// section is struct mem_section: the flag word and the usage (presence, subsection map; the
// pageblock nibbles live in Machine.pb at this section's stride).
type section struct {
	flags     uint8
	usage     bool
	bootUsage bool
	submap    mcheck.SubsectionMap
}

// block is a memory block device plus the resource (busy) of its range and the transient phase
// of its pages while an online/offline runs (asInit: set-aside initialized; restInit: the rest).
type block struct {
	exists, boot, online, busy bool
	asInit, restInit           bool
	hasAlt                     bool // P3/P4 memory_block.altmap
	zone                       mcheck.ZoneID
	nv                         int // nr_vmemmap
	alt                        altmap
}

type pgmap struct {
	start, n int
	hasAlt   bool
	alt      altmap
}

type zone struct {
	present, managed, start, end, nrIsolate int
}

// Vmemmap mapping: unit u covers vmemmap pages [u*PMDPages, (u+1)*PMDPages).
const (
	unitEmpty uint8 = iota
	unitPMD
	unitTable
)

// pte is one base-page entry of a table (or the PMD's single frame).
type pte struct {
	src   uint8 // mcheck.FrameSource
	frame int32 // altmap frame pfn; HVO-shared: the head vmemmap page
	alt   int32 // base pfn of the altmap of an SrcAltmap frame
}

type unit struct {
	kind    uint8
	pmd     pte   // kind == unitPMD: the frame of the whole PMD (altmap frames grow by one per page)
	nmapped int32 // kind == unitTable: mapped entries
	tab     int32 // kind == unitTable: index of its PMDPages entries in Machine.ptes
}

// geom holds the profile and the derived constants; shared, read-only, between clones.
type geom struct {
	p                              mcheck.Profile
	kp                             mcheck.KernelProfile
	secShift, subShift, pageShift  int
	pps, ppss, subPerSec, pbPages  int
	pbPerSec, pbWords              int // pageblocks per section, uint64 words of nibbles per section
	bp, spb, nBlocks, nSecs, nPfns int
	pmdPages, hugePages            int
	slots, slotWords               int // hugetlb slots per block, words per block
	nUnits                         int
	spage, pageBytes               int
	bootPfns, bootRAM, bootBlocks  int
	holeSec                        int
	fullMask                       mcheck.SubsectionMap
	subWords                       int
	mmomPages                      int
	sup1, supN                     bool
	bootPMD                        bool
}

// Machine is the bitmap implementation.
type Machine struct {
	g *geom
	f *faults

	// arena is one pointer-free allocation holding every fixed-size array (secs, blocks, units,
	// pb, folio, opt), so that Clone is one copy.
	arena   []uint64
	secs    []section
	pb      []uint64 // pbWords per section; 4-bit migratetype per pageblock
	blocks  []block
	pins    []int32  // sorted pinned pfns
	folio   []uint64 // slotWords per block: hugetlb folio at slot
	opt     []uint64 // slotWords per block: folio is HVO-optimized
	units   []unit
	ptes    []pte   // page tables of the table units, PMDPages entries each
	freeTab int32   // free list of table slots in ptes (index+1; 0 = none)
	pgmaps  []pgmap // sorted by start
	zones   [mcheck.NrZones]zone

	holeDirty mcheck.SubsectionMap // subsections of the boot hole whose struct pages were poisoned
	pending   mcheck.FaultKind
	badFrees  int
	leaks     int
	notes     []string
}

// Section flag bits (kernel order).
const (
	fPresent = mcheck.SectionMarkedPresent
	fHasMap  = mcheck.SectionHasMemMap
	fOnline  = mcheck.SectionIsOnline
	fEarly   = mcheck.SectionIsEarly
	fTaint   = mcheck.SectionTaintZoneDevice
)

// Kernel migratetype values (no CMA): 4 bits per pageblock.
const (
	mtUnmovable = 0
	mtMovable   = 1
	mtIsolate   = 4
)

func mtSnap(v uint64) mcheck.Migratetype {
	switch v {
	case mtUnmovable:
		return mcheck.MTUnmovable
	case mtMovable:
		return mcheck.MTMovable
	case mtIsolate:
		return mcheck.MTIsolate
	}
	return mcheck.MTNone
}

func log2(x int) int { return bits.Len(uint(x)) - 1 }

// New builds the initial state; faults names deliberate deviations to switch on.
func New(p mcheck.Profile, faultNames ...string) (*Machine, error) {
	f := &faults{}
	for _, n := range faultNames {
		ok := false
		for _, e := range faultTable {
			if e.name == n {
				e.set(f)
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown impl fault %q (known: %v)", n, FaultNames())
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	g := &geom{p: p, kp: p.KP()}
	g.secShift, g.subShift, g.pageShift = p.SectionShift, p.SubsectionShift, p.PageShift
	g.pps, g.ppss, g.subPerSec, g.pbPages = p.PagesPerSection(), p.PagesPerSubsection(), p.SubsectionsPerSection(), p.PageblockPages()
	g.pbPerSec = g.pps / g.pbPages
	g.pbWords = (g.pbPerSec*4 + 63) / 64
	g.bp, g.spb, g.nBlocks, g.nSecs, g.nPfns = p.BlockPages(), p.SectionsPerBlock, p.NrBlocks(), p.NrSections(), p.NrPfns()
	g.pmdPages, g.hugePages = p.PMDPages(), p.HugePages()
	g.slots = g.bp / g.hugePages
	g.slotWords = (g.slots + 63) / 64
	g.spage, g.pageBytes = p.StructPageBytes, p.PageBytes()
	g.bootPfns, g.bootRAM, g.bootBlocks = p.BootPfns(), p.BootRAMPfns(), p.BootBlocks
	g.holeSec = -1
	if p.BootHoleSubsections > 0 {
		g.holeSec = (g.bootPfns - 1) >> g.secShift
	}
	g.fullMask.SetRange(0, g.subPerSec)
	g.subWords = (g.subPerSec + 63) / 64
	g.mmomPages = p.MemmapOnMemoryPages()
	g.sup1, _ = p.SupportsMemmapOnMemory(1)
	g.supN, _ = p.SupportsMemmapOnMemory(2)
	g.bootPMD = p.HugeVmemmap && (p.Populate == mcheck.PopulatePPCRadix || (g.pps*g.spage)%(g.pmdPages*g.pageBytes) == 0)
	nv := g.vEnd(g.nPfns)
	g.nUnits = (nv + g.pmdPages - 1) / g.pmdPages
	if bu := g.vEnd(g.bootPfns); g.bootPMD && (bu+g.pmdPages-1)/g.pmdPages > g.nUnits {
		g.nUnits = (bu + g.pmdPages - 1) / g.pmdPages
	}

	m := &Machine{g: g, f: f}
	m.arena = make([]uint64, g.arenaWords())
	m.carve()

	// Boot sections.
	nBootSecs := g.bootBlocks * g.spb
	for s := 0; s < nBootSecs; s++ {
		sec := &m.secs[s]
		sec.flags = fPresent | fHasMap | fOnline | fEarly
		sec.usage, sec.bootUsage = true, true
		sec.submap = g.fullMask
		if s == g.holeSec {
			sec.submap.ClearRange(g.subPerSec-p.BootHoleSubsections, g.subPerSec)
		}
	}
	m.setPB(0, g.bootPfns, mtMovable)
	for b := 0; b < g.bootBlocks; b++ {
		m.blocks[b] = block{exists: true, boot: true, online: true, busy: true, zone: mcheck.ZoneDMA32}
	}
	m.zones[mcheck.ZoneDMA32] = zone{present: g.bootRAM, managed: g.bootRAM, start: 0, end: g.bootRAM}
	// Boot vmemmap.
	ve := g.vEnd(g.bootPfns)
	if g.bootPMD {
		for u := 0; u*g.pmdPages < ve; u++ {
			m.units[u] = unit{kind: unitPMD, pmd: pte{src: uint8(mcheck.SrcBoot)}}
		}
	} else {
		for v := 0; v < ve; v++ {
			m.setPte(v, pte{src: uint8(mcheck.SrcBoot)})
		}
	}
	return m, nil
}

// ---------------------------------------------------------------------------------------------
// Geometry helpers.

// vOf is the vmemmap page holding the struct page of pfn p.
func (g *geom) vOf(p int) int { return p * g.spage >> g.pageShift }

// vEnd is the end of the vmemmap range of pfns [.., p): ceil(p*S/P).
func (g *geom) vEnd(p int) int { return (p*g.spage + g.pageBytes - 1) >> g.pageShift }

// pfnOfV is the first pfn described by vmemmap page v: ceil(v*P/S).
func (g *geom) pfnOfV(v int) int { return (v<<g.pageShift + g.spage - 1) / g.spage }

func (g *geom) secStart(s int) int { return s << g.secShift }

// subRange is the range [i0, i1) of subsection indexes touched by [a, b) (a < b, one section).
func (g *geom) subRange(a, b int) (int, int) {
	return (a & (g.pps - 1)) >> g.subShift, ((b-1)&(g.pps-1))>>g.subShift + 1
}

// subIndex is subsection_map_index(p).
func (g *geom) subIndex(p int) int { return (p & (g.pps - 1)) >> g.subShift }

// bitRunEnd is the end of the run of equal bits of m starting at i (at most n).
func bitRunEnd(m *mcheck.SubsectionMap, i, n int) int {
	one := m.Test(i)
	for j := i; j < n; {
		w, sh := j>>6, uint(j&63)
		x := m[w] >> sh
		if one {
			x = ^x
		}
		if k := bits.TrailingZeros64(x); k < 64-int(sh) {
			return min(j+k, n)
		}
		j = (w + 1) << 6
	}
	return n
}

func alignDown(x, a int) int { return x / a * a }
func alignUp(x, a int) int   { return (x + a - 1) / a * a }

// fault consumes an armed fail_next of kind k.
func (m *Machine) fault(k mcheck.FaultKind) bool {
	if m.pending == k {
		m.pending = mcheck.FaultNone
		return true
	}
	return false
}

func (m *Machine) note(format string, a ...any) {
	if len(m.notes) < 16 {
		s := fmt.Sprintf(format, a...)
		for _, n := range m.notes {
			if n == s {
				return
			}
		}
		m.notes = append(m.notes, s)
	}
}

// ---------------------------------------------------------------------------------------------
// Clone and fingerprint.

// Clone is a deep copy (the geometry and fault switches are shared, read-only).
func (m *Machine) Clone() mcheck.Machine { return m.clone() }

// Arena layout: secs | blocks | units | pb | folio | opt, each 8-byte aligned.
func words(n int, size uintptr) int { return (n*int(size) + 7) / 8 }

func (g *geom) arenaWords() int {
	return words(g.nSecs, unsafe.Sizeof(section{})) + words(g.nBlocks, unsafe.Sizeof(block{})) +
		words(g.nUnits, unsafe.Sizeof(unit{})) + g.nSecs*g.pbWords + 2*g.nBlocks*g.slotWords
}

// carve points the fixed-size arrays into the arena. The element types hold no pointers, so the
// garbage collector may treat the arena as plain words.
func (m *Machine) carve() {
	g := m.g
	off := 0
	take := func(n int) unsafe.Pointer {
		if n == 0 {
			return unsafe.Pointer(&m.arena[0])
		}
		p := unsafe.Pointer(&m.arena[off])
		off += n
		return p
	}
	m.secs = unsafe.Slice((*section)(take(words(g.nSecs, unsafe.Sizeof(section{})))), g.nSecs)
	m.blocks = unsafe.Slice((*block)(take(words(g.nBlocks, unsafe.Sizeof(block{})))), g.nBlocks)
	m.units = unsafe.Slice((*unit)(take(words(g.nUnits, unsafe.Sizeof(unit{})))), g.nUnits)
	n1 := g.nSecs * g.pbWords
	n2 := g.nBlocks * g.slotWords
	m.pb = m.arena[off : off+n1 : off+n1]
	m.folio = m.arena[off+n1 : off+n1+n2 : off+n1+n2]
	m.opt = m.arena[off+n1+n2 : off+n1+2*n2 : off+n1+2*n2]
}

func (m *Machine) clone() *Machine {
	c := *m
	// One allocation: the fixed arrays, then the variable-length pins, pgmaps and page tables
	// (sliced with cap == len, so a later append moves them out of the shared allocation).
	fixed := m.g.arenaWords()
	np, ng, nt := len(m.pins), len(m.pgmaps), len(m.ptes)
	wp, wg := words(np, unsafe.Sizeof(int32(0))), words(ng, unsafe.Sizeof(pgmap{}))
	c.arena = make([]uint64, fixed+wp+wg+words(nt, unsafe.Sizeof(pte{})))
	copy(c.arena, m.arena[:fixed])
	c.carve()
	c.pins, c.pgmaps, c.ptes = nil, nil, nil
	if np > 0 {
		c.pins = unsafe.Slice((*int32)(unsafe.Pointer(&c.arena[fixed])), np)
		copy(c.pins, m.pins)
	}
	if ng > 0 {
		c.pgmaps = unsafe.Slice((*pgmap)(unsafe.Pointer(&c.arena[fixed+wp])), ng)
		copy(c.pgmaps, m.pgmaps)
	}
	if nt > 0 {
		c.ptes = unsafe.Slice((*pte)(unsafe.Pointer(&c.arena[fixed+wp+wg])), nt)
		copy(c.ptes, m.ptes)
	}
	c.notes = m.notes[:len(m.notes):len(m.notes)]
	return &c
}

// hasher mixes words into four independent lanes (so consecutive words do not wait on each
// other's multiplies), folded at the end.
type hasher struct {
	l [4]uint64
	n uint
}

const (
	hPrime1 = 0x9E3779B185EBCA87
	hPrime2 = 0xC2B2AE3D27D4EB4F
)

func (h *hasher) w(v uint64) {
	i := h.n & 3
	h.l[i] = bits.RotateLeft64(h.l[i]^v*hPrime2, 31) * hPrime1
	h.n++
}

func (h *hasher) sum() uint64 {
	x := h.l[0] ^ bits.RotateLeft64(h.l[1], 17) ^ bits.RotateLeft64(h.l[2], 29) ^ bits.RotateLeft64(h.l[3], 43) ^ uint64(h.n)
	x ^= x >> 33
	x *= 0xFF51AFD7ED558CCD
	x ^= x >> 33
	x *= 0xC4CEB9FE1A85EC53
	x ^= x >> 33
	return x
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (h *hasher) alt(a *altmap) {
	h.w(uint64(a.base) | uint64(a.end)<<32)
	h.w(uint64(a.reserve) | uint64(a.free)<<32)
	h.w(uint64(int64(a.align)) ^ uint64(int64(a.alloc))<<29)
}

// Fingerprint hashes the full internal state (which is canonical: equal observable states have
// equal representations), without building a Snapshot.
func (m *Machine) Fingerprint() uint64 {
	g := m.g
	h := hasher{l: [4]uint64{0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89}}
	for s := range m.secs {
		sec := &m.secs[s]
		h.w(uint64(sec.flags) | b2u(sec.usage)<<8 | b2u(sec.bootUsage)<<9)
		for _, w := range sec.submap[:g.subWords] {
			h.w(w)
		}
		if sec.usage {
			for _, w := range m.pb[s*g.pbWords : (s+1)*g.pbWords] {
				h.w(w)
			}
		}
	}
	for i := range m.blocks {
		b := &m.blocks[i]
		if !b.exists && !b.busy {
			h.w(0)
			continue
		}
		h.w(b2u(b.exists) | b2u(b.boot)<<1 | b2u(b.online)<<2 | b2u(b.busy)<<3 | b2u(b.asInit)<<4 |
			b2u(b.restInit)<<5 | b2u(b.hasAlt)<<6 | uint64(b.zone)<<8 | uint64(b.nv)<<16)
		if b.hasAlt {
			h.alt(&b.alt)
		}
	}
	h.w(uint64(len(m.pins)))
	for _, p := range m.pins {
		h.w(uint64(p))
	}
	for i, w := range m.folio {
		h.w(w)
		h.w(m.opt[i])
	}
	for i := range m.units {
		u := &m.units[i]
		h.w(uint64(u.kind) | uint64(u.pmd.src)<<8 | uint64(uint32(u.pmd.frame))<<16)
		if u.kind == unitPMD {
			h.w(uint64(uint32(u.pmd.alt)))
		}
		if u.kind == unitTable {
			for _, e := range m.table(i) {
				h.w(uint64(e.src) | uint64(uint32(e.frame))<<8 | uint64(uint32(e.alt))<<40)
			}
		}
	}
	h.w(uint64(len(m.pgmaps)))
	for i := range m.pgmaps {
		p := &m.pgmaps[i]
		h.w(uint64(p.start) | uint64(p.n)<<32)
		h.w(b2u(p.hasAlt))
		if p.hasAlt {
			h.alt(&p.alt)
		}
	}
	for _, z := range m.zones {
		h.w(uint64(z.present) | uint64(z.managed)<<32)
		h.w(uint64(z.start) | uint64(z.end)<<32)
		h.w(uint64(z.nrIsolate))
	}
	for _, w := range m.holeDirty {
		h.w(w)
	}
	h.w(uint64(m.pending) | uint64(m.badFrees)<<8 | uint64(m.leaks)<<36)
	return h.sum()
}

// ---------------------------------------------------------------------------------------------
// Small sorted-set helpers.

// pinIndex is the index of the first pin >= p.
func (m *Machine) pinIndex(p int) int {
	return sort.Search(len(m.pins), func(i int) bool { return int(m.pins[i]) >= p })
}
