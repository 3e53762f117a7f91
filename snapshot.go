package mcheck

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// ZoneID names a zone. The model has one node; boot RAM lies in DMA32, below the hot-pluggable
// range, so the kernel zone for hot-added memory is Normal.
type ZoneID uint8

const (
	ZoneNone ZoneID = iota
	ZoneDMA32
	ZoneNormal
	ZoneMovable
	ZoneDevice
	NrZones
)

var zoneNames = [...]string{"none", "DMA32", "Normal", "Movable", "Device"}

func (z ZoneID) String() string { return zoneNames[z] }

// BlockState is a memory block device's state.
type BlockState uint8

const (
	BlockOffline BlockState = iota + 1
	BlockOnline
)

func (s BlockState) String() string {
	switch s {
	case BlockOffline:
		return "offline"
	case BlockOnline:
		return "online"
	}
	return "absent"
}

// Section flag bits, in the kernel's bit order (include/linux/mmzone.h).
const (
	SectionMarkedPresent   = 1 << 0
	SectionHasMemMap       = 1 << 1
	SectionIsOnline        = 1 << 2
	SectionIsEarly         = 1 << 3
	SectionTaintZoneDevice = 1 << 4
	SectionMapLastBit      = 5 // == SECTION_NID_SHIFT
)

// PageState is the coarse state of one page frame (kernel-semantics.md §3.5).
type PageState uint8

const (
	PageAbsent       PageState = iota // no memmap for this pfn
	PageBoot                          // boot RAM, owned by the rest of the kernel
	PageHole                          // a hole inside an early section (memmap exists, no RAM)
	PagePoisoned                      // memmap exists but is uninitialized (added, offline)
	PageFree                          // free in the buddy allocator
	PagePinned                        // an unmovable allocation
	PageHugetlb                       // part of a hugetlb folio
	PageSelfHosted                    // memmap_on_memory set-aside of an online block
	PageDevice                        // a ZONE_DEVICE page
	PageDeviceMemmap                  // inside a ZONE_DEVICE driver altmap window
	NrPageStates
)

var pageStateNames = [...]string{"absent", "boot", "hole", "poisoned", "free", "pinned", "hugetlb",
	"self-hosted", "device", "device-memmap"}

func (s PageState) String() string { return pageStateNames[s] }

// Migratetype of a pageblock (stored in the section's usage).
type Migratetype uint8

const (
	MTNone      Migratetype = iota // no usage map: the section is not present
	MTUnmovable                    // 0 in the kernel's bits: what a fresh usage map reads as
	MTMovable
	MTIsolate
)

var mtNames = [...]string{"none", "unmovable", "movable", "isolate"}

func (m Migratetype) String() string { return mtNames[m] }

// FrameSource says where a vmemmap data frame came from.
type FrameSource uint8

const (
	SrcUnmapped  FrameSource = iota
	SrcBoot                  // memblock at boot (early sections)
	SrcBuddy                 // the page allocator (outside the modeled range)
	SrcAltmap                // an altmap: Frame is the pfn, Altmap the altmap's base pfn
	SrcHVOShared             // HVO remapped this vmemmap page read-only onto Frame = the head's vmemmap page
)

var srcNames = [...]string{"unmapped", "boot", "buddy", "altmap", "hvo-shared"}

func (s FrameSource) String() string { return srcNames[s] }

// MapSize is the size of the mapping a vmemmap page is part of.
type MapSize uint8

const (
	MapNone MapSize = iota
	MapBase
	MapPMD
)

var mapNames = [...]string{"-", "base", "pmd"}

func (m MapSize) String() string { return mapNames[m] }

// AltmapSnap is a struct vmem_altmap.
type AltmapSnap struct {
	BasePfn, EndPfn             int // EndPfn inclusive
	Reserve, Free, Align, Alloc int
}

// NextPfn is vmem_altmap_next_pfn.
func (a AltmapSnap) NextPfn() int { return a.BasePfn + a.Reserve + a.Alloc + a.Align }

// NrFree is vmem_altmap_nr_free.
func (a AltmapSnap) NrFree() int {
	if n := a.Free - (a.Alloc + a.Align); n > 0 {
		return n
	}
	return 0
}

// BlockSnap is one memory block device.
type BlockSnap struct {
	ID        int
	State     BlockState
	Zone      ZoneID // B.zone; None when offline
	Boot      bool   // created at boot
	NrVmemmap int    // nr_vmemmap(B): self-hosted set-aside at the block's start
	Altmap    *AltmapSnap
}

// SectionSnap is one struct mem_section.
type SectionSnap struct {
	Flags  uint8         // Section* bits
	Usage  bool          // usage != NULL
	SubMap SubsectionMap // usage->subsection_map
}

// ZoneSnap is a zone's counters and span [Start, End).
type ZoneSnap struct {
	Present, Managed int
	Start, End       int
	NrIsolate        int // nr_isolate_pageblock
}

// PageRun is a maximal run of pfns with the same state and zone.
type PageRun struct {
	Start, N int
	State    PageState
	Zone     ZoneID
}

// PageblockRun is a maximal run of pageblocks (indexes) with the same migratetype.
type PageblockRun struct {
	Start, N int
	MT       Migratetype
}

// VmemmapRun is a maximal run of vmemmap pages (index = pfn*S/PAGE_SIZE) with the same kind of
// backing. For SrcAltmap Frame is the first page's frame pfn and grows by one per page; for
// SrcHVOShared Frame is the head vmemmap page they all share.
type VmemmapRun struct {
	Start, N int
	Src      FrameSource
	Size     MapSize
	Frame    int
	Altmap   int // base pfn of the altmap a SrcAltmap frame belongs to
}

// Folio is a hugetlb folio.
type Folio struct {
	Pfn       int
	Optimized bool // HVO freed its tail vmemmap pages
}

// PgmapSnap is a ZONE_DEVICE dev_pagemap with one range.
type PgmapSnap struct {
	Start, N int // pfns
	Altmap   *AltmapSnap
}

// Snapshot is the canonical observable state; model and impl must produce equal snapshots.
type Snapshot struct {
	Blocks     []BlockSnap   // existing block devices, by id
	Sections   []SectionSnap // every section, by number
	Zones      [NrZones]ZoneSnap
	Pages      []PageRun
	Pageblocks []PageblockRun
	Vmemmap    []VmemmapRun
	Folios     []Folio
	Pgmaps     []PgmapSnap
	Pending    FaultKind
	// BadFrees counts vmemmap frames taken from an altmap that were released to the buddy.
	BadFrees int
	// AltmapLeaks counts altmaps freed while frames were still accounted to them (alloc != 0).
	AltmapLeaks int
}

// Block returns the block with id, or nil.
func (s *Snapshot) Block(id int) *BlockSnap {
	for i := range s.Blocks {
		if s.Blocks[i].ID == id {
			return &s.Blocks[i]
		}
	}
	return nil
}

// PageAt returns the run holding pfn.
func (s *Snapshot) PageAt(pfn int) PageRun {
	lo, hi := 0, len(s.Pages)
	for lo < hi {
		m := (lo + hi) / 2
		r := s.Pages[m]
		switch {
		case pfn < r.Start:
			hi = m
		case pfn >= r.Start+r.N:
			lo = m + 1
		default:
			return r
		}
	}
	return PageRun{Start: pfn, N: 1}
}

// VmemmapAt returns the backing of vmemmap page v (Src == SrcUnmapped when none).
func (s *Snapshot) VmemmapAt(v int) VmemmapRun {
	lo, hi := 0, len(s.Vmemmap)
	for lo < hi {
		m := (lo + hi) / 2
		r := s.Vmemmap[m]
		switch {
		case v < r.Start:
			hi = m
		case v >= r.Start+r.N:
			lo = m + 1
		default:
			out := VmemmapRun{Start: v, N: 1, Src: r.Src, Size: r.Size, Frame: r.Frame, Altmap: r.Altmap}
			if r.Src == SrcAltmap {
				out.Frame = r.Frame + v - r.Start
			}
			return out
		}
	}
	return VmemmapRun{Start: v, N: 1}
}

// PageblockAt returns the migratetype of pageblock index i.
func (s *Snapshot) PageblockAt(i int) Migratetype {
	for _, r := range s.Pageblocks {
		if i >= r.Start && i < r.Start+r.N {
			return r.MT
		}
	}
	return MTNone
}

// RunBuilder appends values and merges neighbours; the one way model and impl build runs.
type RunBuilder struct{ s *Snapshot }

// NewRunBuilder starts building runs into s.
func NewRunBuilder(s *Snapshot) RunBuilder { return RunBuilder{s} }

// Pages appends n pfns from start in state/zone.
func (b RunBuilder) Pages(start, n int, st PageState, z ZoneID) {
	if n <= 0 {
		return
	}
	l := b.s.Pages
	if k := len(l); k > 0 && l[k-1].State == st && l[k-1].Zone == z && l[k-1].Start+l[k-1].N == start {
		l[k-1].N += n
		return
	}
	b.s.Pages = append(l, PageRun{start, n, st, z})
}

// Pageblocks appends n pageblocks from index start.
func (b RunBuilder) Pageblocks(start, n int, mt Migratetype) {
	if n <= 0 {
		return
	}
	l := b.s.Pageblocks
	if k := len(l); k > 0 && l[k-1].MT == mt && l[k-1].Start+l[k-1].N == start {
		l[k-1].N += n
		return
	}
	b.s.Pageblocks = append(l, PageblockRun{start, n, mt})
}

// Vmemmap appends n vmemmap pages from start; SrcUnmapped pages are not recorded.
func (b RunBuilder) Vmemmap(start, n int, src FrameSource, size MapSize, frame, altmap int) {
	if n <= 0 || src == SrcUnmapped {
		return
	}
	if src != SrcAltmap {
		altmap = 0
		if src != SrcHVOShared {
			frame = 0
		}
	}
	l := b.s.Vmemmap
	if k := len(l); k > 0 {
		p := &l[k-1]
		if p.Src == src && p.Size == size && p.Altmap == altmap && p.Start+p.N == start {
			if (src == SrcAltmap && p.Frame+p.N == frame) || (src != SrcAltmap && p.Frame == frame) {
				p.N += n
				return
			}
		}
	}
	b.s.Vmemmap = append(l, VmemmapRun{start, n, src, size, frame, altmap})
}

// Hash is a 64-bit fingerprint of the snapshot's canonical encoding.
func (s *Snapshot) Hash() uint64 {
	words := 1 + 10*len(s.Blocks) + 5*len(s.Sections) + 5*int(NrZones) + 1 + 3*len(s.Pages) + 1 +
		3*len(s.Pageblocks) + 1 + 5*len(s.Vmemmap) + 1 + len(s.Folios) + 1 + 9*len(s.Pgmaps) + 3
	bp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bp)
	if cap(*bp) < 8*words {
		*bp = make([]byte, 0, 8*words)
	}
	buf := (*bp)[:0]
	w := func(v uint64) { buf = binary.LittleEndian.AppendUint64(buf, v) }
	wa := func(a *AltmapSnap) {
		if a == nil {
			w(0)
			return
		}
		w(1)
		w(uint64(a.BasePfn))
		w(uint64(a.EndPfn))
		w(uint64(a.Reserve))
		w(uint64(a.Free))
		w(uint64(a.Align))
		w(uint64(a.Alloc))
	}
	w(uint64(len(s.Blocks)))
	for _, b := range s.Blocks {
		w(uint64(b.ID))
		w(uint64(b.State) | uint64(b.Zone)<<8 | uint64(b2i(b.Boot))<<16)
		w(uint64(b.NrVmemmap))
		wa(b.Altmap)
	}
	for _, x := range s.Sections {
		w(uint64(x.Flags) | uint64(b2i(x.Usage))<<8)
		for _, word := range x.SubMap {
			w(word)
		}
	}
	for _, z := range s.Zones {
		w(uint64(z.Present))
		w(uint64(z.Managed))
		w(uint64(z.Start))
		w(uint64(z.End))
		w(uint64(z.NrIsolate))
	}
	w(uint64(len(s.Pages)))
	for _, r := range s.Pages {
		w(uint64(r.Start))
		w(uint64(r.N))
		w(uint64(r.State) | uint64(r.Zone)<<8)
	}
	w(uint64(len(s.Pageblocks)))
	for _, r := range s.Pageblocks {
		w(uint64(r.Start))
		w(uint64(r.N))
		w(uint64(r.MT))
	}
	w(uint64(len(s.Vmemmap)))
	for _, r := range s.Vmemmap {
		w(uint64(r.Start))
		w(uint64(r.N))
		w(uint64(r.Src) | uint64(r.Size)<<8)
		w(uint64(r.Frame))
		w(uint64(r.Altmap))
	}
	w(uint64(len(s.Folios)))
	for _, f := range s.Folios {
		w(uint64(f.Pfn)<<1 | uint64(b2i(f.Optimized)))
	}
	w(uint64(len(s.Pgmaps)))
	for _, g := range s.Pgmaps {
		w(uint64(g.Start))
		w(uint64(g.N))
		wa(g.Altmap)
	}
	w(uint64(s.Pending))
	w(uint64(s.BadFrees))
	w(uint64(s.AltmapLeaks))
	*bp = buf
	return xxhash.Sum64(buf)
}

// hashBufs recycles Hash's encoding buffers: the checker hashes a snapshot per transition.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Diff lists the fields where a and b differ, one line each ("path: a=... b=..."), at most max
// lines (0 = all). Names label the two sides (e.g. "model", "impl").
func Diff(a, b *Snapshot, na, nb string, max int) []string {
	var out []string
	add := func(format string, args ...any) {
		if max == 0 || len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	// Blocks, by id.
	ids := map[int]bool{}
	for _, x := range a.Blocks {
		ids[x.ID] = true
	}
	for _, x := range b.Blocks {
		ids[x.ID] = true
	}
	for id := 0; len(ids) > 0; id++ {
		if !ids[id] {
			continue
		}
		delete(ids, id)
		x, y := a.Block(id), b.Block(id)
		switch {
		case x == nil:
			add("block[%d]: %s=absent %s=%s", id, na, nb, fmtBlock(y))
		case y == nil:
			add("block[%d]: %s=%s %s=absent", id, na, fmtBlock(x), nb)
		default:
			if fx, fy := fmtBlock(x), fmtBlock(y); fx != fy {
				add("block[%d]: %s=%s %s=%s", id, na, fx, nb, fy)
			}
		}
	}
	for i := 0; i < len(a.Sections) || i < len(b.Sections); i++ {
		var x, y SectionSnap
		if i < len(a.Sections) {
			x = a.Sections[i]
		}
		if i < len(b.Sections) {
			y = b.Sections[i]
		}
		if x != y {
			add("section[%d]: %s=%s %s=%s", i, na, FmtSection(x), nb, FmtSection(y))
		}
	}
	for z := ZoneID(0); z < NrZones; z++ {
		x, y := a.Zones[z], b.Zones[z]
		if x != y {
			add("zone[%s]: %s=%s %s=%s", z, na, fmtZone(x), nb, fmtZone(y))
		}
	}
	diffRuns(add, "pfn", na, nb, pageRunsAsSpans(a.Pages), pageRunsAsSpans(b.Pages))
	diffRuns(add, "pageblock", na, nb, pbRunsAsSpans(a.Pageblocks), pbRunsAsSpans(b.Pageblocks))
	diffRuns(add, "vmemmap", na, nb, vmRunsAsSpans(a.Vmemmap), vmRunsAsSpans(b.Vmemmap))
	if fa, fb := fmt.Sprint(a.Folios), fmt.Sprint(b.Folios); fa != fb {
		add("hugetlb: %s=%s %s=%s", na, fa, nb, fb)
	}
	if fa, fb := fmtPgmaps(a.Pgmaps), fmtPgmaps(b.Pgmaps); fa != fb {
		add("pgmaps: %s=%s %s=%s", na, fa, nb, fb)
	}
	if a.Pending != b.Pending {
		add("fail_next: %s=%s %s=%s", na, a.Pending, nb, b.Pending)
	}
	if a.BadFrees != b.BadFrees {
		add("bad_frees: %s=%d %s=%d", na, a.BadFrees, nb, b.BadFrees)
	}
	if a.AltmapLeaks != b.AltmapLeaks {
		add("altmap_leaks: %s=%d %s=%d", na, a.AltmapLeaks, nb, b.AltmapLeaks)
	}
	return out
}

func fmtBlock(b *BlockSnap) string {
	s := fmt.Sprintf("{%s zone=%s nr_vmemmap=%d", b.State, b.Zone, b.NrVmemmap)
	if b.Boot {
		s += " boot"
	}
	if b.Altmap != nil {
		s += " altmap=" + FmtAltmap(b.Altmap)
	}
	return s + "}"
}

// FmtAltmap prints an altmap's counters.
func FmtAltmap(a *AltmapSnap) string {
	if a == nil {
		return "none"
	}
	return fmt.Sprintf("{base=%#x end=%#x reserve=%d free=%d align=%d alloc=%d}", a.BasePfn, a.EndPfn, a.Reserve, a.Free, a.Align, a.Alloc)
}

// FmtSection prints a section word, usage and subsection map.
func FmtSection(x SectionSnap) string {
	var f []string
	for i, n := range []string{"PRESENT", "HAS_MEM_MAP", "ONLINE", "EARLY", "TAINT_ZONE_DEVICE"} {
		if x.Flags&(1<<i) != 0 {
			f = append(f, n)
		}
	}
	if len(f) == 0 {
		f = append(f, "0")
	}
	u := "nil"
	if x.Usage {
		u = "map=" + x.SubMap.String()
	}
	return strings.Join(f, "|") + " usage=" + u
}

func fmtZone(z ZoneSnap) string {
	return fmt.Sprintf("{present=%d managed=%d span=[%#x,%#x) isolate=%d}", z.Present, z.Managed, z.Start, z.End, z.NrIsolate)
}

func fmtPgmaps(l []PgmapSnap) string {
	var s []string
	for _, g := range l {
		s = append(s, fmt.Sprintf("[%#x+%d altmap=%s]", g.Start, g.N, FmtAltmap(g.Altmap)))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// span is a run with a printable value; unit-step values (altmap frames) carry Step.
type span struct {
	start, n int
	val      string
	base     int // for stepping values: the value's number at start
	step     bool
}

func pageRunsAsSpans(l []PageRun) []span {
	s := make([]span, len(l))
	for i, r := range l {
		s[i] = span{start: r.Start, n: r.N, val: r.State.String() + "/" + r.Zone.String()}
	}
	return s
}

func pbRunsAsSpans(l []PageblockRun) []span {
	s := make([]span, len(l))
	for i, r := range l {
		s[i] = span{start: r.Start, n: r.N, val: r.MT.String()}
	}
	return s
}

func vmRunsAsSpans(l []VmemmapRun) []span {
	s := make([]span, len(l))
	for i, r := range l {
		switch r.Src {
		case SrcAltmap:
			s[i] = span{start: r.Start, n: r.N, val: fmt.Sprintf("altmap(%#x)/%s frame=", r.Altmap, r.Size), base: r.Frame, step: true}
		case SrcHVOShared:
			s[i] = span{start: r.Start, n: r.N, val: fmt.Sprintf("hvo-shared(%#x)/%s", r.Frame, r.Size)}
		default:
			s[i] = span{start: r.Start, n: r.N, val: r.Src.String() + "/" + r.Size.String()}
		}
	}
	return s
}

// diffRuns walks two sorted run lists and reports the differing stretches.
func diffRuns(add func(string, ...any), what, na, nb string, a, b []span) {
	at := func(l []span, i *int, x int) (string, int) { // value at x and where it stops being constant
		for *i < len(l) && l[*i].start+l[*i].n <= x {
			(*i)++
		}
		if *i >= len(l) || l[*i].start > x {
			end := 1 << 62
			if *i < len(l) {
				end = l[*i].start
			}
			return "unset", end
		}
		r := l[*i]
		if r.step {
			return fmt.Sprintf("%s%#x", r.val, r.base+x-r.start), x + 1
		}
		return r.val, r.start + r.n
	}
	ia, ib := 0, 0
	x := 0
	limit := 0
	for _, l := range [][]span{a, b} {
		if k := len(l); k > 0 && l[k-1].start+l[k-1].n > limit {
			limit = l[k-1].start + l[k-1].n
		}
	}
	reported := 0
	for x < limit && reported < 8 {
		va, ea := at(a, &ia, x)
		vb, eb := at(b, &ib, x)
		end := min(ea, eb, limit)
		if va != vb {
			// extend over a stretch where both keep differing in the same way
			y := end
			for y < limit {
				va2, ea2 := at(a, &ia, y)
				vb2, eb2 := at(b, &ib, y)
				if stripFrame(va2) != stripFrame(va) || stripFrame(vb2) != stripFrame(vb) {
					break
				}
				y = min(ea2, eb2, limit)
			}
			add("%s[%#x..%#x): %s=%s %s=%s", what, x, y, na, va, nb, vb)
			reported++
			end = y
		}
		x = end
	}
}

func stripFrame(s string) string {
	if i := strings.Index(s, "frame="); i >= 0 {
		return s[:i]
	}
	return s
}

func altmapEqual(a, b *AltmapSnap) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Equal reports whether two snapshots are identical, without allocating (Diff explains how
// they differ).
func (s *Snapshot) Equal(o *Snapshot) bool {
	if s.Pending != o.Pending || s.BadFrees != o.BadFrees || s.AltmapLeaks != o.AltmapLeaks || s.Zones != o.Zones ||
		len(s.Blocks) != len(o.Blocks) || len(s.Sections) != len(o.Sections) || len(s.Pages) != len(o.Pages) ||
		len(s.Pageblocks) != len(o.Pageblocks) || len(s.Vmemmap) != len(o.Vmemmap) ||
		len(s.Folios) != len(o.Folios) || len(s.Pgmaps) != len(o.Pgmaps) {
		return false
	}
	for i := range s.Blocks {
		a, b := &s.Blocks[i], &o.Blocks[i]
		if a.ID != b.ID || a.State != b.State || a.Zone != b.Zone || a.Boot != b.Boot || a.NrVmemmap != b.NrVmemmap || !altmapEqual(a.Altmap, b.Altmap) {
			return false
		}
	}
	for i := range s.Sections {
		if s.Sections[i] != o.Sections[i] {
			return false
		}
	}
	for i := range s.Pages {
		if s.Pages[i] != o.Pages[i] {
			return false
		}
	}
	for i := range s.Pageblocks {
		if s.Pageblocks[i] != o.Pageblocks[i] {
			return false
		}
	}
	for i := range s.Vmemmap {
		if s.Vmemmap[i] != o.Vmemmap[i] {
			return false
		}
	}
	for i := range s.Folios {
		if s.Folios[i] != o.Folios[i] {
			return false
		}
	}
	for i := range s.Pgmaps {
		a, b := &s.Pgmaps[i], &o.Pgmaps[i]
		if a.Start != b.Start || a.N != b.N || !altmapEqual(a.Altmap, b.Altmap) {
			return false
		}
	}
	return true
}
