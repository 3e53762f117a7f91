// Package mcheck is the shared vocabulary of the memory-hotplug checker: machine profiles, the
// operation alphabet and its trace format, results (kernel errnos), and the observable Snapshot that
// the reference model (model/) and the bitmap implementation (impl/) are compared on.
package mcheck

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kernel is a kernel release, reduced to what the model needs: its semantics profile P0..P4
// (kernel-semantics.md §8).
type Kernel struct{ Major, Minor int }

// KernelProfile numbers the semantic families of kernel-semantics.md §8.
type KernelProfile int

const (
	P0 KernelProfile = iota // 5.3-5.12: subsections, no memmap_on_memory
	P1                      // 5.13-5.19: memmap_on_memory, single-block adds, nr_vmemmap_pages
	P2                      // 6.0-6.5: PG_vmemmap_self_hosted, HVO compatible
	P3                      // 6.6-6.7: force mode, fallback, memory_block.altmap
	P4                      // 6.8+: per-block altmaps
)

func (p KernelProfile) String() string { return "P" + strconv.Itoa(int(p)) }

// ParseKernel reads "6.8" (or "6.8.12", "6.1.0-56-amd64").
func ParseKernel(s string) (Kernel, error) {
	t := s
	if i := strings.IndexAny(t, "-+ "); i >= 0 {
		t = t[:i]
	}
	parts := strings.Split(t, ".")
	if len(parts) < 2 {
		return Kernel{}, fmt.Errorf("kernel version %q: want MAJOR.MINOR, e.g. 6.8", s)
	}
	maj, err1 := strconv.Atoi(parts[0])
	min, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return Kernel{}, fmt.Errorf("kernel version %q: want MAJOR.MINOR, e.g. 6.8", s)
	}
	k := Kernel{maj, min}
	if k.Less(Kernel{5, 3}) {
		return Kernel{}, fmt.Errorf("kernel version %q: mcheck models 5.3 and later (subsection hotplug)", s)
	}
	return k, nil
}

func (k Kernel) String() string { return fmt.Sprintf("%d.%d", k.Major, k.Minor) }

// Less orders releases.
func (k Kernel) Less(o Kernel) bool {
	return k.Major < o.Major || (k.Major == o.Major && k.Minor < o.Minor)
}

// AtLeast reports k >= major.minor.
func (k Kernel) AtLeast(major, minor int) bool { return !k.Less(Kernel{major, minor}) }

// Profile maps a release to its semantic family.
func (k Kernel) Profile() KernelProfile {
	switch {
	case k.AtLeast(6, 8):
		return P4
	case k.AtLeast(6, 6):
		return P3
	case k.AtLeast(6, 0):
		return P2
	case k.AtLeast(5, 13):
		return P1
	}
	return P0
}

// Mode is the memory_hotplug.memmap_on_memory boot parameter.
type Mode int

const (
	ModeOff Mode = iota
	ModeOn
	ModeForce // 6.6+
)

func (m Mode) String() string { return [...]string{"off", "on", "force"}[m] }

// ParseMode reads off|on|force (also 0|1|n|y).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "off", "0", "n", "no", "false":
		return ModeOff, nil
	case "on", "1", "y", "yes", "true":
		return ModeOn, nil
	case "force":
		return ModeForce, nil
	}
	return 0, fmt.Errorf("memmap_on_memory %q: want off, on or force", s)
}

// Populate is the architecture's vmemmap_populate strategy (kernel-semantics.md §4.1).
type Populate int

const (
	// PopulateX86: whole-section memmaps get PMD mappings (altmap first, no fallback when an
	// altmap is given); partial sections get base pages from ordinary memory, ignoring the altmap.
	// Base pages are always released to the buddy, PMDs to the altmap when one is passed.
	PopulateX86 Populate = iota
	// PopulateARM64: with HugeVmemmap (4K pages) as x86 for whole sections; partial sections and
	// 16K/64K pages use base pages that do draw from the altmap. Release follows the altmap argument.
	PopulateARM64
	// PopulatePPCRadix: PMD blocks only for whole, aligned PMD ranges that do not cross the altmap
	// window, otherwise base pages from the altmap. Release tests window membership of each frame.
	PopulatePPCRadix
)

func (p Populate) String() string { return [...]string{"x86", "arm64", "ppc-radix"}[p] }

// Profile is one machine plus kernel semantics. All sizes are in pages unless named *Bytes.
type Profile struct {
	Name   string
	Arch   string // x86_64, arm64, ppc64, s390x
	Scaled bool   // a scaled twin for exhaustive search, not a real machine

	PageShift        int // log2 PAGE_SIZE in bytes
	StructPageBytes  int // sizeof(struct page)
	SectionShift     int // log2 pages per section (SECTION_SIZE_BITS - PAGE_SHIFT)
	SubsectionShift  int // log2 pages per subsection
	PageblockOrder   int
	MaxOrder         int // MAX_PAGE_ORDER, inclusive
	PMDShift         int // log2 (PMD_SIZE / PAGE_SIZE); also the huge page order (HPAGE_PMD_ORDER)
	SectionsPerBlock int // memory_block_size_bytes() / section size

	BootBlocks          int // boot RAM: blocks [0, BootBlocks), early sections, zone DMA32
	BootHoleSubsections int // trailing subsections of boot memory that are a hole (no RAM)
	HotplugStart        int // first block id of the hot-pluggable range
	HotplugBlocks       int // number of blocks in the hot-pluggable range

	Populate     Populate
	HugeVmemmap  bool // arch may map the vmemmap with PMDs (x86; arm64 4K; ppc radix)
	ArchMMOMFrom Kernel
	ArchMMOMNone bool // the arch never selects ARCH_MHP_MEMMAP_ON_MEMORY_ENABLE
	PPCHash      bool // ppc64 hash MMU: arch hook refuses memmap_on_memory

	HVO        bool // hugetlb_free_vmemmap=on
	ZoneDevice bool // CONFIG_ZONE_DEVICE
	Kernel     Kernel
	Mode       Mode
}

// Page-size arithmetic.
func (p *Profile) PageBytes() int             { return 1 << p.PageShift }
func (p *Profile) PagesPerSection() int       { return 1 << p.SectionShift }
func (p *Profile) PagesPerSubsection() int    { return 1 << p.SubsectionShift }
func (p *Profile) SubsectionsPerSection() int { return 1 << (p.SectionShift - p.SubsectionShift) }
func (p *Profile) PageblockPages() int        { return 1 << p.PageblockOrder }
func (p *Profile) PMDPages() int              { return 1 << p.PMDShift }
func (p *Profile) HugePages() int             { return 1 << p.PMDShift }
func (p *Profile) BlockPages() int            { return p.SectionsPerBlock << p.SectionShift }
func (p *Profile) BlockBytes() int64          { return int64(p.BlockPages()) << p.PageShift }

// StructPagesPerVmemmapPage is how many pfns one vmemmap page describes (PAGE_SIZE / S).
func (p *Profile) StructPagesPerVmemmapPage() int { return p.PageBytes() / p.StructPageBytes }

// VmemmapPage is the index of the vmemmap page holding the struct page of pfn.
func (p *Profile) VmemmapPage(pfn int) int { return pfn * p.StructPageBytes >> p.PageShift }

// NrBlocks is the number of memory block ids the machine has (boot, gap and hot-pluggable).
func (p *Profile) NrBlocks() int { return p.HotplugStart + p.HotplugBlocks }

// NrSections is the number of sections the machine has.
func (p *Profile) NrSections() int { return p.NrBlocks() * p.SectionsPerBlock }

// NrPfns is the size of the physical address space the machine models.
func (p *Profile) NrPfns() int { return p.NrBlocks() * p.BlockPages() }

// BootPfns is the end of boot memory (holes included).
func (p *Profile) BootPfns() int { return p.BootBlocks * p.BlockPages() }

// BootRAMPfns is the end of boot RAM (the hole excluded).
func (p *Profile) BootRAMPfns() int {
	return p.BootPfns() - p.BootHoleSubsections*p.PagesPerSubsection()
}

// BlockStart is the first pfn of block b.
func (p *Profile) BlockStart(b int) int { return b * p.BlockPages() }

// SectionOf returns the section number of pfn.
func (p *Profile) SectionOf(pfn int) int { return pfn >> p.SectionShift }

// SubsectionIndex is subsection_map_index(pfn).
func (p *Profile) SubsectionIndex(pfn int) int {
	return (pfn & (p.PagesPerSection() - 1)) >> p.SubsectionShift
}

// KP is the kernel's semantic family.
func (p *Profile) KP() KernelProfile { return p.Kernel.Profile() }

// Validate rejects impossible combinations with a message naming the problem.
func (p *Profile) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("profile %s: %s", p.Name, fmt.Sprintf(format, a...))
	}
	switch {
	case p.PageShift < 1 || p.PageShift > 20:
		return bad("page shift %d out of range", p.PageShift)
	case p.StructPageBytes <= 0 || p.StructPageBytes > p.PageBytes():
		return bad("sizeof(struct page) %d must be in (0, PAGE_SIZE]", p.StructPageBytes)
	case p.SubsectionShift < 0 || p.SubsectionShift > p.SectionShift:
		return bad("subsection (%d pages) larger than a section (%d pages)", p.PagesPerSubsection(), p.PagesPerSection())
	case p.SubsectionsPerSection() > MaxSubsections:
		return bad("%d subsections per section: at most %d supported", p.SubsectionsPerSection(), MaxSubsections)
	case p.MaxOrder > p.SectionShift:
		return bad("MAX_PAGE_ORDER %d + PAGE_SHIFT exceeds the section size (a buddy chunk would cross a section)", p.MaxOrder)
	case p.PageblockOrder > p.MaxOrder:
		return bad("pageblock order %d > MAX_PAGE_ORDER %d", p.PageblockOrder, p.MaxOrder)
	case p.PageblockOrder > p.SectionShift:
		return bad("pageblock larger than a section")
	case p.PMDShift < 1:
		return bad("PMD size must be larger than a page")
	case p.SectionsPerBlock < 1 || p.SectionsPerBlock&(p.SectionsPerBlock-1) != 0:
		return bad("memory block must be a power-of-two number of sections, got %d", p.SectionsPerBlock)
	case p.BootBlocks < 1:
		return bad("boot memory needs at least one block")
	case p.BootHoleSubsections < 0 || p.BootHoleSubsections >= p.SubsectionsPerSection():
		return bad("boot hole of %d subsections must lie inside the last boot section", p.BootHoleSubsections)
	case p.HotplugStart < p.BootBlocks:
		return bad("hot-pluggable range (block %d) overlaps boot memory (%d blocks)", p.HotplugStart, p.BootBlocks)
	case p.HotplugBlocks < 1:
		return bad("need at least one hot-pluggable block")
	case p.HotplugBlocks > 4096:
		return bad("%d hot-pluggable blocks: at most 4096", p.HotplugBlocks)
	case p.Mode == ModeForce && p.KP() < P3:
		return bad("memmap_on_memory=force needs kernel 6.6+ (kernel %s takes a bool)", p.Kernel)
	case p.Mode != ModeOff && p.KP() < P1:
		return bad("memmap_on_memory does not exist before 5.13 (kernel %s)", p.Kernel)
	case p.HVO && p.StructPageBytes&(p.StructPageBytes-1) != 0:
		return bad("HVO needs sizeof(struct page) to be a power of two, got %d", p.StructPageBytes)
	case p.HVO && !p.Kernel.AtLeast(5, 14):
		return bad("HVO exists from 5.14 (kernel %s)", p.Kernel)
	case p.HVO && p.HugePages()*p.StructPageBytes < 2*p.PageBytes():
		return bad("HVO needs a huge page's struct pages to span at least two vmemmap pages")
	case int64(p.NrPfns()) > 1<<26:
		return bad("%d pfns: the model keeps per-pfn state, at most 2^26", p.NrPfns())
	}
	if p.SectionShift+p.PageShift > 40 {
		return bad("section too large")
	}
	return nil
}

// WithOverrides applies the user-settable knobs, then validates.
func (p Profile) WithOverrides(o Overrides) (Profile, error) {
	if o.Kernel != nil {
		p.Kernel = *o.Kernel
	}
	if o.Mode != nil {
		p.Mode = *o.Mode
	}
	if o.Blocks != nil {
		p.HotplugBlocks = *o.Blocks
	}
	if o.HVO != nil {
		p.HVO = *o.HVO
	}
	if o.ZoneDevice != nil {
		p.ZoneDevice = *o.ZoneDevice
	}
	return p, p.Validate()
}

// Overrides are the knobs a trace header or the command line may change on a named profile.
type Overrides struct {
	Kernel     *Kernel
	Mode       *Mode
	Blocks     *int
	HVO        *bool
	ZoneDevice *bool
}

var profiles = map[string]Profile{}

func register(p Profile) {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	profiles[p.Name] = p
}

// LookupProfile returns a named profile.
func LookupProfile(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("unknown profile %q (known: %s)", name, strings.Join(ProfileNames(), ", "))
	}
	return p, nil
}

// ProfileNames lists the built-in profiles, real machines first.
func ProfileNames() []string {
	var names []string
	for n := range profiles {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := profiles[names[i]], profiles[names[j]]
		if a.Scaled != b.Scaled {
			return !a.Scaled
		}
		return names[i] < names[j]
	})
	return names
}

func init() {
	k := func(s string) Kernel { v, _ := ParseKernel(s); return v }
	// x86_64, 4K pages, 128 MiB sections and blocks (boot RAM < 64 GiB), a QEMU-like layout:
	// 1 GiB of boot RAM, hot-pluggable DIMM space at 4 GiB (block 32).
	register(Profile{Name: "x86_64-4k", Arch: "x86_64", PageShift: 12, StructPageBytes: 64,
		SectionShift: 15, SubsectionShift: 9, PageblockOrder: 9, MaxOrder: 10, PMDShift: 9,
		SectionsPerBlock: 1, BootBlocks: 8, HotplugStart: 32, HotplugBlocks: 16,
		Populate: PopulateX86, HugeVmemmap: true, ArchMMOMFrom: k("5.13"),
		ZoneDevice: true, Kernel: k("6.12"), Mode: ModeOn})
	register(Profile{Name: "arm64-4k", Arch: "arm64", PageShift: 12, StructPageBytes: 64,
		SectionShift: 15, SubsectionShift: 9, PageblockOrder: 9, MaxOrder: 10, PMDShift: 9,
		SectionsPerBlock: 1, BootBlocks: 8, HotplugStart: 8, HotplugBlocks: 16,
		Populate: PopulateARM64, HugeVmemmap: true, ArchMMOMFrom: k("5.13"),
		ZoneDevice: true, Kernel: k("6.12"), Mode: ModeOn})
	// arm64 16K: 128 MiB sections (8192 pages), pageblock = PMD = 32 MiB.
	register(Profile{Name: "arm64-16k", Arch: "arm64", PageShift: 14, StructPageBytes: 64,
		SectionShift: 13, SubsectionShift: 7, PageblockOrder: 11, MaxOrder: 11, PMDShift: 11,
		SectionsPerBlock: 1, BootBlocks: 8, HotplugStart: 8, HotplugBlocks: 16,
		Populate: PopulateARM64, ArchMMOMFrom: k("5.13"),
		ZoneDevice: true, Kernel: k("6.12"), Mode: ModeForce})
	// arm64 64K: 512 MiB sections, pageblock = PMD = 512 MiB.
	register(Profile{Name: "arm64-64k", Arch: "arm64", PageShift: 16, StructPageBytes: 64,
		SectionShift: 13, SubsectionShift: 5, PageblockOrder: 13, MaxOrder: 13, PMDShift: 13,
		SectionsPerBlock: 1, BootBlocks: 4, HotplugStart: 4, HotplugBlocks: 8,
		Populate: PopulateARM64, ArchMMOMFrom: k("5.13"),
		ZoneDevice: true, Kernel: k("6.12"), Mode: ModeForce})
	// ppc64 radix, 64K pages: 16 MiB sections, 256 MiB LMBs (16 sections), pageblock = PMD = 2 MiB.
	// One vmemmap PMD describes 2 GiB, and boot RAM (1 GiB) is mapped with one, so hot-added memory
	// below 2 GiB would reuse the boot PMD: the pluggable range starts at 2 GiB (block 8).
	register(Profile{Name: "ppc64-64k", Arch: "ppc64", PageShift: 16, StructPageBytes: 64,
		SectionShift: 8, SubsectionShift: 5, PageblockOrder: 5, MaxOrder: 8, PMDShift: 5,
		SectionsPerBlock: 16, BootBlocks: 4, HotplugStart: 8, HotplugBlocks: 16,
		Populate: PopulatePPCRadix, HugeVmemmap: true, ArchMMOMFrom: k("6.6"),
		ZoneDevice: true, Kernel: k("6.12"), Mode: ModeForce})
	// s390x: 256 MiB sections and blocks, 1 MiB pageblocks and segments; memmap_on_memory from 6.8,
	// so with the default 6.1 kernel it is unsupported.
	register(Profile{Name: "s390x-4k", Arch: "s390x", PageShift: 12, StructPageBytes: 64,
		SectionShift: 16, SubsectionShift: 9, PageblockOrder: 8, MaxOrder: 10, PMDShift: 8,
		SectionsPerBlock: 1, BootBlocks: 4, HotplugStart: 4, HotplugBlocks: 8,
		Populate: PopulateX86, HugeVmemmap: true, ArchMMOMFrom: k("6.8"),
		Kernel: k("6.1"), Mode: ModeOn})

	// Scaled twins: same relationships, tiny numbers, for exhaustive search.
	// tiny-x86 keeps x86_64-4k's coincidences: one section's memmap (16 vmemmap pages) is exactly
	// one PMD, one pageblock and one subsection's worth of pages; a huge page's struct pages span
	// 4 vmemmap pages (x86: 8) so HVO frees frames; MAX_PAGE_ORDER = pageblock order + 1.
	register(Profile{Name: "tiny-x86", Arch: "x86_64", Scaled: true, PageShift: 12, StructPageBytes: 1024,
		SectionShift: 6, SubsectionShift: 4, PageblockOrder: 4, MaxOrder: 5, PMDShift: 4,
		SectionsPerBlock: 1, BootBlocks: 1, BootHoleSubsections: 1, HotplugStart: 1, HotplugBlocks: 2,
		Populate: PopulateX86, HugeVmemmap: true, ArchMMOMFrom: k("5.13"),
		HVO: true, ZoneDevice: true, Kernel: k("6.8"), Mode: ModeOn})
	// tiny-ppc keeps ppc64-64k's: a section's memmap is a quarter of a vmemmap page (pages are
	// shared by four sections), a block's memmap (1 page) is not a pageblock (8 pages) multiple,
	// so only force mode supports memmap_on_memory, wasting 7 of 8 set-aside pages. A vmemmap PMD
	// describes 8 blocks, so the pluggable range starts at block 8, past the boot PMD.
	register(Profile{Name: "tiny-ppc", Arch: "ppc64", Scaled: true, PageShift: 16, StructPageBytes: 1024,
		SectionShift: 4, SubsectionShift: 3, PageblockOrder: 3, MaxOrder: 4, PMDShift: 3,
		SectionsPerBlock: 4, BootBlocks: 1, BootHoleSubsections: 1, HotplugStart: 8, HotplugBlocks: 2,
		Populate: PopulatePPCRadix, HugeVmemmap: true, ArchMMOMFrom: k("6.6"),
		ZoneDevice: true, Kernel: k("6.8"), Mode: ModeForce})
	// tiny-arm64 is arm64-4k scaled like tiny-x86, but partial-section memmaps draw from the altmap.
	register(Profile{Name: "tiny-arm64", Arch: "arm64", Scaled: true, PageShift: 12, StructPageBytes: 1024,
		SectionShift: 6, SubsectionShift: 4, PageblockOrder: 4, MaxOrder: 5, PMDShift: 4,
		SectionsPerBlock: 1, BootBlocks: 1, BootHoleSubsections: 1, HotplugStart: 1, HotplugBlocks: 2,
		Populate: PopulateARM64, HugeVmemmap: true, ArchMMOMFrom: k("5.13"),
		HVO: true, ZoneDevice: true, Kernel: k("6.8"), Mode: ModeOn})
}
