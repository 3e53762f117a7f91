package invariant_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/invariant"
	"github.com/mcheck/mcheck/model"
)

// ops is a small hand-made alphabet over the first two hot-pluggable blocks.
func ops(p *mcheck.Profile) []mcheck.Op {
	var out []mcheck.Op
	h := p.HotplugStart
	pb := p.PageblockPages()
	for b := h; b < h+2; b++ {
		out = append(out,
			mcheck.Op{Kind: mcheck.OpAddMemory, Block: b, Nr: 1},
			mcheck.Op{Kind: mcheck.OpAddMemory, Block: b, Nr: 1, MMOM: true},
			mcheck.Op{Kind: mcheck.OpRemoveMemory, Block: b, Nr: 1},
			mcheck.Op{Kind: mcheck.OpOnline, Block: b, Type: mcheck.OnlineKernel},
			mcheck.Op{Kind: mcheck.OpOnline, Block: b, Type: mcheck.OnlineMovable},
			mcheck.Op{Kind: mcheck.OpOnline, Block: b, Type: mcheck.OnlineAuto},
			mcheck.Op{Kind: mcheck.OpOffline, Block: b},
			mcheck.Op{Kind: mcheck.OpPin, Block: b},
			mcheck.Op{Kind: mcheck.OpUnpin, Block: b},
			mcheck.Op{Kind: mcheck.OpHugetlbAlloc, Block: b},
			mcheck.Op{Kind: mcheck.OpHugetlbOptimize, Block: b},
			mcheck.Op{Kind: mcheck.OpHugetlbFree, Block: b},
			mcheck.Op{Kind: mcheck.OpAllocContig, Pfn: b * p.BlockPages(), Nr: pb},
			mcheck.Op{Kind: mcheck.OpAllocContig, Pfn: b*p.BlockPages() + pb, Nr: pb},
			mcheck.Op{Kind: mcheck.OpPfnValid, Pfn: b * p.BlockPages()},
			mcheck.Op{Kind: mcheck.OpPfnToOnlinePage, Pfn: b*p.BlockPages() + pb},
		)
	}
	hs := p.HotplugStart * p.BlockPages() / p.PagesPerSubsection()
	secMemmap := (p.PagesPerSection()*p.StructPageBytes + p.PageBytes() - 1) / p.PageBytes()
	out = append(out,
		mcheck.Op{Kind: mcheck.OpAddMemory, Block: h, Nr: 2, MMOM: true},
		mcheck.Op{Kind: mcheck.OpRemoveMemory, Block: h, Nr: 2},
		mcheck.Op{Kind: mcheck.OpMemremap, Subsection: hs, Nr: 1},
		mcheck.Op{Kind: mcheck.OpMemunmap, Subsection: hs},
		mcheck.Op{Kind: mcheck.OpMemremap, Subsection: hs, Nr: p.SubsectionsPerSection(), Free: max(secMemmap, p.PMDPages())},
		mcheck.Op{Kind: mcheck.OpFailNext, Fault: mcheck.FaultUsage},
		mcheck.Op{Kind: mcheck.OpFailNext, Fault: mcheck.FaultVmemmap},
		mcheck.Op{Kind: mcheck.OpFailNext, Fault: mcheck.FaultBlockDevice},
		mcheck.Op{Kind: mcheck.OpFailNext, Fault: mcheck.FaultNotifier},
	)
	if p.BootHoleSubsections > 0 {
		hole := p.BootRAMPfns() / p.PagesPerSubsection()
		out = append(out,
			mcheck.Op{Kind: mcheck.OpMemremap, Subsection: hole, Nr: 1},
			mcheck.Op{Kind: mcheck.OpMemunmap, Subsection: hole},
			mcheck.Op{Kind: mcheck.OpPfnToOnlinePage, Pfn: p.BootRAMPfns()},
			mcheck.Op{Kind: mcheck.OpPfnValid, Pfn: p.BootRAMPfns()},
		)
	}
	return out
}

func variants(t *testing.T) []mcheck.Profile {
	var out []mcheck.Profile
	for _, name := range []string{"tiny-x86", "tiny-ppc", "tiny-arm64"} {
		base, _ := mcheck.LookupProfile(name)
		for _, kv := range []string{"5.10", "5.15", "6.1", "6.6", "6.8"} {
			for _, mode := range []mcheck.Mode{mcheck.ModeOff, mcheck.ModeOn, mcheck.ModeForce} {
				k, _ := mcheck.ParseKernel(kv)
				m := mode
				hvo := base.HVO && k.AtLeast(5, 14)
				p, err := base.WithOverrides(mcheck.Overrides{Kernel: &k, Mode: &m, HVO: &hvo})
				if err != nil {
					continue // e.g. force before 6.6
				}
				out = append(out, p)
			}
		}
	}
	return out
}

// The reference model satisfies every invariant on random walks over every tiny profile, kernel
// family and memmap_on_memory mode.
func TestModelSatisfiesInvariants(t *testing.T) {
	walks, steps := 60, 40
	if testing.Short() {
		walks = 10
	}
	for _, p := range variants(t) {
		p := p
		t.Run(fmt.Sprintf("%s/%s/%s", p.Name, p.Kernel, p.Mode), func(t *testing.T) {
			alphabet := ops(&p)
			rng := rand.New(rand.NewPCG(1, uint64(len(p.Name))))
			for w := 0; w < walks; w++ {
				m := model.New(p)
				prev := m.Snapshot()
				if v := invariant.Check(&p, nil, nil, mcheck.Result{}, prev); len(v) > 0 {
					t.Fatalf("initial state: %v", v)
				}
				var trace []string
				for s := 0; s < steps; s++ {
					op := alphabet[rng.IntN(len(alphabet))]
					r := m.Apply(op)
					trace = append(trace, fmt.Sprintf("%s  # %s", op, r))
					next := m.Snapshot()
					if v := invariant.Check(&p, prev, &op, r, next); len(v) > 0 {
						t.Fatalf("after:\n%s\nviolations: %v", strings.Join(trace, "\n"), v)
					}
					prev = next
				}
			}
		})
	}
}

// Each invariant family fires on a state that breaks it.
func TestInvariantsDetect(t *testing.T) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	m := model.New(p)
	for _, l := range []string{"add_memory block=1 nr=1 memmap_on_memory=1", "online block=1 type=movable"} {
		op, _ := mcheck.ParseOp(l)
		if r := m.Apply(op); r.Errno != 0 {
			t.Fatal(l, r)
		}
	}
	good := m.Snapshot()
	if v := invariant.Check(&p, nil, nil, mcheck.Result{}, good); len(v) > 0 {
		t.Fatalf("good state flagged: %v", v)
	}
	clone := func() *mcheck.Snapshot {
		s := *good
		s.Blocks = append([]mcheck.BlockSnap(nil), good.Blocks...)
		s.Sections = append([]mcheck.SectionSnap(nil), good.Sections...)
		s.Pages = append([]mcheck.PageRun(nil), good.Pages...)
		return &s
	}
	cases := []struct {
		id     string
		break_ func(s *mcheck.Snapshot)
	}{
		{"INV-1", func(s *mcheck.Snapshot) { s.Sections[1].Flags = mcheck.SectionIsOnline }},
		{"INV-7", func(s *mcheck.Snapshot) { s.BadFrees = 1 }},
		{"INV-11", func(s *mcheck.Snapshot) { s.Zones[mcheck.ZoneMovable].Present -= 16 }},
		{"INV-12", func(s *mcheck.Snapshot) { s.Sections[1].Flags &^= mcheck.SectionIsOnline }},
		{"INV-10", func(s *mcheck.Snapshot) {
			for i := range s.Pages {
				if s.Pages[i].State == mcheck.PageSelfHosted {
					s.Pages[i].State = mcheck.PageFree
				}
			}
		}},
		{"INV-21", func(s *mcheck.Snapshot) { s.Zones[mcheck.ZoneMovable].NrIsolate = 1 }},
		{"INV-3", func(s *mcheck.Snapshot) { s.Vmemmap = s.Vmemmap[:len(s.Vmemmap)-1] }},
		{"INV-24", func(s *mcheck.Snapshot) {
			last := s.Vmemmap[len(s.Vmemmap)-1]
			last.N--
			s.Vmemmap = append(append([]mcheck.VmemmapRun(nil), s.Vmemmap[:len(s.Vmemmap)-1]...), last)
		}},
	}
	for _, c := range cases {
		s := clone()
		c.break_(s)
		found := false
		for _, v := range invariant.Check(&p, nil, nil, mcheck.Result{}, s) {
			found = found || v.ID == c.id
		}
		if !found {
			t.Errorf("%s not detected", c.id)
		}
	}
}
