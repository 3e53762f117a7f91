package mcheck

import "fmt"

// MemmapPagesExact is PFN_UP(BP * sizeof(struct page)): the pages one block's memmap needs
// (memory_block_memmap_size()).
func (p *Profile) MemmapPagesExact() int {
	b := p.BlockPages() * p.StructPageBytes
	return (b + p.PageBytes() - 1) / p.PageBytes()
}

// MemmapOnMemoryPages is memory_block_memmap_on_memory_pages(): the set-aside of one block.
// Force mode (6.6+) rounds it up to a pageblock multiple; the excess is wasted.
func (p *Profile) MemmapOnMemoryPages() int {
	n := p.MemmapPagesExact()
	if p.Mode == ModeForce {
		pb := p.PageblockPages()
		n = (n + pb - 1) / pb * pb
	}
	return n
}

// ForceWaste is the set-aside beyond what the memmap needs.
func (p *Profile) ForceWaste() int { return p.MemmapOnMemoryPages() - p.MemmapPagesExact() }

// ArchHasMemmapOnMemory reports CONFIG_MHP_MEMMAP_ON_MEMORY for this arch and kernel.
func (p *Profile) ArchHasMemmapOnMemory() bool {
	return !p.ArchMMOMNone && !p.Kernel.Less(p.ArchMMOMFrom) && p.KP() >= P1
}

// archSupportsMemmapOnMemory is arch_supports_memmap_on_memory(vmemmap_size) (6.6+): the generic
// version wants whole PMDs; powerpc refuses hash, accepts anything on radix-64K and whole PMDs on
// radix-4K (arch/powerpc/include/asm/pgtable.h).
func (p *Profile) archSupportsMemmapOnMemory(vmemmapBytes int64) (bool, string) {
	pmdBytes := int64(p.PMDPages()) << p.PageShift
	if p.Arch == "ppc64" {
		if p.PPCHash {
			return false, "ppc64 hash MMU: arch_supports_memmap_on_memory refuses"
		}
		if p.PageShift == 16 {
			return true, ""
		}
	}
	if vmemmapBytes%pmdBytes != 0 {
		return false, fmt.Sprintf("arch check: the memmap (%d bytes) is not a multiple of PMD_SIZE (%d bytes)", vmemmapBytes, pmdBytes)
	}
	return true, ""
}

// SupportsMemmapOnMemory is mhp_supports_memmap_on_memory() for an add of nrBlocks blocks
// (mm/memory_hotplug.c; kernel-semantics.md §5.1). P4 takes no size: requests are split per block.
// The reason says why not.
func (p *Profile) SupportsMemmapOnMemory(nrBlocks int) (bool, string) {
	if p.Mode == ModeOff {
		return false, "memory_hotplug.memmap_on_memory is off"
	}
	if !p.ArchHasMemmapOnMemory() {
		if p.ArchMMOMNone {
			return false, p.Arch + " does not select ARCH_MHP_MEMMAP_ON_MEMORY_ENABLE"
		}
		return false, fmt.Sprintf("%s supports memmap_on_memory from %s, kernel is %s", p.Arch, p.ArchMMOMFrom, p.Kernel)
	}
	vmemmapBytes := int64(p.BlockPages()) * int64(p.StructPageBytes)
	pbBytes := int64(p.PageblockPages()) << p.PageShift
	pmdBytes := int64(p.PMDPages()) << p.PageShift
	switch p.KP() {
	case P1, P2:
		// mhp_supports_memmap_on_memory(size), 5.13-6.5.
		if p.KP() == P1 && p.HVO {
			return false, "hugetlb vmemmap optimization is enabled (5.14-5.19: HVO wins)"
		}
		if nrBlocks != 1 {
			return false, fmt.Sprintf("size is %d memory blocks, must be exactly one", nrBlocks)
		}
		if vmemmapBytes%pmdBytes != 0 {
			return false, fmt.Sprintf("the memmap (%d bytes) does not span whole PMDs (%d bytes)", vmemmapBytes, pmdBytes)
		}
		if (p.BlockBytes()-vmemmapBytes)%pbBytes != 0 {
			return false, "the memory left after the memmap is not a pageblock multiple"
		}
		return true, ""
	}
	// P3/P4: mhp_supports_memmap_on_memory(size) / (void).
	if p.KP() == P3 && nrBlocks != 1 {
		return false, fmt.Sprintf("size is %d memory blocks, must be exactly one (6.6-6.7; falls back to a normal memmap)", nrBlocks)
	}
	if vmemmapBytes%int64(p.PageBytes()) != 0 {
		return false, fmt.Sprintf("the memmap (%d bytes) is not a whole number of pages", vmemmapBytes)
	}
	if p.MemmapOnMemoryPages()%p.PageblockPages() != 0 {
		return false, fmt.Sprintf("%d memmap pages are not a multiple of the pageblock (%d pages); memmap_on_memory=force would pad them", p.MemmapOnMemoryPages(), p.PageblockPages())
	}
	if p.MemmapOnMemoryPages() >= p.BlockPages() {
		return false, fmt.Sprintf("the set-aside (%d pages) would consume the whole block", p.MemmapOnMemoryPages())
	}
	return p.archSupportsMemmapOnMemory(vmemmapBytes)
}

// NrVmemmapPages is what a block added with memmap_on_memory records as its set-aside:
// P1/P2 nr_vmemmap_pages = altmap.alloc (the memmap actually consumed); P3+ altmap->free.
func (p *Profile) NrVmemmapPages() int {
	if p.KP() <= P2 {
		return p.MemmapPagesExact()
	}
	return p.MemmapOnMemoryPages()
}

// WithBlockBytes returns p with a different memory block size (a power-of-two multiple of the
// section size), e.g. the 2 GiB blocks of a large x86 machine or a pseries LMB size.
func (p Profile) WithBlockBytes(b int64) (Profile, error) {
	sec := int64(p.PagesPerSection()) << p.PageShift
	if b <= 0 || b%sec != 0 {
		return p, fmt.Errorf("profile %s: block size %d is not a multiple of the section size (%d bytes)", p.Name, b, sec)
	}
	p.SectionsPerBlock = int(b / sec)
	return p, p.Validate()
}
