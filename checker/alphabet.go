package checker

import (
	"fmt"
	"strings"

	"github.com/mcheck/mcheck"
)

// Alphabet enumerates the concrete ops the search and simulation try in every state, with
// representative parameters for profile p, restricted to kinds (nil or empty: every kind). The
// order is canonical (by kind, then as listed below) and defines the search's canonical order.
//
// Per kind, with H the hot-pluggable blocks [HotplugStart, HotplugStart+HotplugBlocks):
//
//	add_memory          every b in H: nr=1 memmap_on_memory=0 and =1; plus one add spanning all of H
//	                    (memmap_on_memory=1) when H has more than one block
//	remove_memory       every b in H: nr=1; plus one remove spanning all of H
//	online              every b in H: type=kernel, movable, auto
//	offline, pin, unpin, hugetlb_alloc, hugetlb_vmemmap_optimize, hugetlb_free: every b in H
//	memremap            the boot hole's first subsection (if the profile has a hole), nr=1, no
//	                    altmap; the first subsection of H, nr=1, no altmap; the whole first section of
//	                    H with a driver altmap reserve=0 free=<the section's memmap pages, >= 1>
//	memunmap            at each distinct memremap start
//	alloc_contig        every b in H: at its first pfn and at its second pageblock, nr=one pageblock
//	fail_next           every fault kind: usage, vmemmap, block_device, notifier
//	pfn_valid, pfn_to_online_page: the first pfn of the boot hole (if any); every b in H: its first
//	                    pfn and the first pfn after one pageblock
func Alphabet(p *mcheck.Profile, kinds []mcheck.OpKind) []mcheck.Op {
	want := func(k mcheck.OpKind) bool {
		if len(kinds) == 0 {
			return true
		}
		for _, x := range kinds {
			if x == k {
				return true
			}
		}
		return false
	}
	var blocks []int
	for b := p.HotplugStart; b < p.HotplugStart+p.HotplugBlocks; b++ {
		blocks = append(blocks, b)
	}
	pb := p.PageblockPages()
	ppss := p.PagesPerSubsection()
	firstHot := p.BlockStart(p.HotplugStart)

	// memremap ranges.
	var remaps []mcheck.Op
	if p.BootHoleSubsections > 0 {
		remaps = append(remaps, mcheck.Op{Kind: mcheck.OpMemremap, Subsection: p.BootRAMPfns() / ppss, Nr: 1})
	}
	remaps = append(remaps, mcheck.Op{Kind: mcheck.OpMemremap, Subsection: firstHot / ppss, Nr: 1})
	secMemmapBytes := p.PagesPerSection() * p.StructPageBytes
	free := (secMemmapBytes + p.PageBytes() - 1) / p.PageBytes()
	if free < 1 {
		free = 1
	}
	remaps = append(remaps, mcheck.Op{Kind: mcheck.OpMemremap, Subsection: firstHot / ppss,
		Nr: p.SubsectionsPerSection(), Reserve: 0, Free: free})

	// query pfns.
	var qpfns []int
	if p.BootHoleSubsections > 0 {
		qpfns = append(qpfns, p.BootRAMPfns())
	}
	for _, b := range blocks {
		qpfns = append(qpfns, p.BlockStart(b))
		if pb < p.BlockPages() {
			qpfns = append(qpfns, p.BlockStart(b)+pb)
		}
	}

	var out []mcheck.Op
	for k := mcheck.OpKind(0); k < mcheck.NrOpKinds; k++ {
		if !want(k) {
			continue
		}
		add := func(op mcheck.Op) { op.Kind = k; out = append(out, op) }
		switch k {
		case mcheck.OpAddMemory:
			for _, b := range blocks {
				add(mcheck.Op{Block: b, Nr: 1, MMOM: false})
				add(mcheck.Op{Block: b, Nr: 1, MMOM: true})
			}
			if len(blocks) > 1 {
				add(mcheck.Op{Block: blocks[0], Nr: len(blocks), MMOM: true})
			}
		case mcheck.OpRemoveMemory:
			for _, b := range blocks {
				add(mcheck.Op{Block: b, Nr: 1})
			}
			if len(blocks) > 1 {
				add(mcheck.Op{Block: blocks[0], Nr: len(blocks)})
			}
		case mcheck.OpOnline:
			for _, b := range blocks {
				for _, t := range []mcheck.OnlineType{mcheck.OnlineKernel, mcheck.OnlineMovable, mcheck.OnlineAuto} {
					add(mcheck.Op{Block: b, Type: t})
				}
			}
		case mcheck.OpOffline, mcheck.OpPin, mcheck.OpUnpin, mcheck.OpHugetlbAlloc,
			mcheck.OpHugetlbOptimize, mcheck.OpHugetlbFree:
			for _, b := range blocks {
				add(mcheck.Op{Block: b})
			}
		case mcheck.OpMemremap:
			for _, r := range remaps {
				add(r)
			}
		case mcheck.OpMemunmap:
			seen := map[int]bool{}
			for _, r := range remaps {
				if !seen[r.Subsection] {
					seen[r.Subsection] = true
					add(mcheck.Op{Subsection: r.Subsection})
				}
			}
		case mcheck.OpAllocContig:
			for _, b := range blocks {
				add(mcheck.Op{Pfn: p.BlockStart(b), Nr: pb})
				if 2*pb <= p.BlockPages() {
					add(mcheck.Op{Pfn: p.BlockStart(b) + pb, Nr: pb})
				}
			}
		case mcheck.OpFailNext:
			for f := mcheck.FaultKind(1); f < mcheck.NrFaultKinds; f++ {
				add(mcheck.Op{Fault: f})
			}
		case mcheck.OpPfnValid, mcheck.OpPfnToOnlinePage:
			for _, pfn := range qpfns {
				add(mcheck.Op{Pfn: pfn})
			}
		}
	}
	return out
}

// DefaultOpKinds is the alphabet `mcheck` explores when --ops is not given: every op kind,
// ZONE_DEVICE, fault injection and the queries included. Measured on tiny-x86 (2 hot-pluggable
// blocks) at depth 8 on an idle 2-core machine: 49 concrete ops, 35,386 states, 764,645
// transitions, about 3-4 s wall-clock with 2 workers (about 6 s of CPU time).
var DefaultOpKinds = AllOpKinds()

// CoreOpKinds ("--ops core") is the hotplug core without ZONE_DEVICE, fault injection and the
// queries: add/remove, online/offline, pin/unpin, the hugetlb ops and alloc_contig (30 ops on
// tiny-x86; depth 8 in about a second).
var CoreOpKinds = []mcheck.OpKind{
	mcheck.OpAddMemory, mcheck.OpRemoveMemory, mcheck.OpOnline, mcheck.OpOffline,
	mcheck.OpPin, mcheck.OpUnpin, mcheck.OpHugetlbAlloc, mcheck.OpHugetlbOptimize,
	mcheck.OpHugetlbFree, mcheck.OpAllocContig,
}

// AllOpKinds lists every op kind.
func AllOpKinds() []mcheck.OpKind {
	var out []mcheck.OpKind
	for k := mcheck.OpKind(0); k < mcheck.NrOpKinds; k++ {
		out = append(out, k)
	}
	return out
}

// ParseOpsFlag reads an --ops value: a comma list of op names and the set names "default"
// (DefaultOpKinds), "all" (every kind) and "core" (CoreOpKinds).
func ParseOpsFlag(s string) ([]mcheck.OpKind, error) {
	var names []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		var set []mcheck.OpKind
		switch n {
		case "default":
			set = DefaultOpKinds
		case "all":
			set = AllOpKinds()
		case "core":
			set = CoreOpKinds
		default:
			names = append(names, n)
			continue
		}
		for _, k := range set {
			names = append(names, k.String())
		}
	}
	kinds, err := mcheck.ParseOpKinds(strings.Join(names, ","))
	if err != nil {
		return nil, fmt.Errorf("--ops: %v", err)
	}
	return kinds, nil
}

// OpKindNames prints kinds as a comma list.
func OpKindNames(kinds []mcheck.OpKind) string {
	var n []string
	for _, k := range kinds {
		n = append(n, k.String())
	}
	return strings.Join(n, ",")
}
