//go:build lockstep

// Lockstep comparison against the reference model (go test -tags lockstep ./impl/). Kept behind a
// build tag so that the impl package's default tests never depend on model/.
package impl_test

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
)

func randOp(r *rand.Rand, p *mcheck.Profile) mcheck.Op {
	nb := p.NrBlocks()
	blk := func() int {
		switch r.Intn(10) {
		case 0:
			return r.Intn(nb + 2)
		case 1, 2:
			return r.Intn(p.BootBlocks + 1)
		}
		return p.HotplugStart + r.Intn(p.HotplugBlocks)
	}
	nsub := p.NrPfns() / p.PagesPerSubsection()
	k := mcheck.OpKind(r.Intn(int(mcheck.NrOpKinds)))
	o := mcheck.Op{Kind: k}
	switch k {
	case mcheck.OpAddMemory:
		o.Block, o.Nr, o.MMOM = blk(), 1+r.Intn(3)*r.Intn(2), r.Intn(3) > 0
		if r.Intn(20) == 0 {
			o.Nr = 0
		}
	case mcheck.OpRemoveMemory:
		o.Block, o.Nr = blk(), 1+r.Intn(3)*r.Intn(2)
	case mcheck.OpOnline:
		o.Block, o.Type = blk(), mcheck.OnlineType(r.Intn(3))
	case mcheck.OpOffline, mcheck.OpPin, mcheck.OpUnpin, mcheck.OpHugetlbAlloc, mcheck.OpHugetlbOptimize, mcheck.OpHugetlbFree:
		o.Block = blk()
	case mcheck.OpMemremap, mcheck.OpMemunmap:
		spb := p.BlockPages() / p.PagesPerSubsection()
		switch r.Intn(4) {
		case 0:
			o.Subsection = r.Intn(nsub + 1)
		case 1:
			o.Subsection = p.BootPfns()/p.PagesPerSubsection() - 1 - r.Intn(2)
		default:
			o.Subsection = blk()*spb + r.Intn(spb)
		}
		o.Nr = 1 + r.Intn(spb+1)
		if r.Intn(3) == 0 {
			o.Nr = spb * (1 + r.Intn(2))
		}
		if r.Intn(2) == 0 {
			o.Free = r.Intn(o.Nr*p.PagesPerSubsection() + 1)
			o.Reserve = r.Intn(p.PagesPerSubsection())
		}
		if r.Intn(20) == 0 {
			o.Nr = 0
		}
	case mcheck.OpAllocContig:
		o.Pfn = r.Intn(p.NrPfns())
		if r.Intn(2) == 0 {
			o.Pfn = blk() * p.BlockPages()
		}
		o.Nr = 1 + r.Intn(p.BlockPages())
	case mcheck.OpFailNext:
		o.Fault = mcheck.FaultKind(1 + r.Intn(4))
	case mcheck.OpPfnValid, mcheck.OpPfnToOnlinePage:
		o.Pfn = r.Intn(p.NrPfns() + 10)
	}
	return o
}

// focusedOp concentrates on two hot-pluggable blocks and the hugetlb/HVO/altmap paths.
func focusedOp(r *rand.Rand, p *mcheck.Profile) mcheck.Op {
	b := p.HotplugStart + r.Intn(min(2, p.HotplugBlocks))
	spb := p.BlockPages() / p.PagesPerSubsection()
	kinds := []mcheck.OpKind{mcheck.OpAddMemory, mcheck.OpAddMemory, mcheck.OpOnline, mcheck.OpOnline, mcheck.OpOffline,
		mcheck.OpRemoveMemory, mcheck.OpHugetlbAlloc, mcheck.OpHugetlbAlloc, mcheck.OpHugetlbOptimize, mcheck.OpHugetlbOptimize,
		mcheck.OpHugetlbFree, mcheck.OpPin, mcheck.OpUnpin, mcheck.OpAllocContig, mcheck.OpFailNext, mcheck.OpMemremap,
		mcheck.OpMemunmap, mcheck.OpPfnToOnlinePage}
	o := mcheck.Op{Kind: kinds[r.Intn(len(kinds))], Block: b}
	switch o.Kind {
	case mcheck.OpAddMemory:
		o.Nr, o.MMOM = 1+r.Intn(2)*r.Intn(2), r.Intn(4) > 0
	case mcheck.OpRemoveMemory:
		o.Nr = 1 + r.Intn(2)*r.Intn(2)
	case mcheck.OpOnline:
		o.Type = mcheck.OnlineType(r.Intn(3))
	case mcheck.OpMemremap, mcheck.OpMemunmap:
		o.Subsection = (b+2)*spb + r.Intn(2)*r.Intn(spb)
		if r.Intn(3) == 0 {
			o.Subsection = (b+2)*spb - 1 - r.Intn(spb)
		}
		o.Nr = 1 + r.Intn(2*spb)
		if r.Intn(2) == 0 {
			o.Free = r.Intn(o.Nr*p.PagesPerSubsection()/2 + 1)
			o.Reserve = r.Intn(2) * r.Intn(p.PagesPerSubsection())
		}
	case mcheck.OpAllocContig:
		o.Pfn = b*p.BlockPages() + r.Intn(p.BlockPages())
		o.Nr = 1 + r.Intn(p.BlockPages()/2)
	case mcheck.OpFailNext:
		o.Fault = mcheck.FaultKind(1 + r.Intn(4))
	case mcheck.OpPfnToOnlinePage:
		o.Pfn = b*p.BlockPages() + r.Intn(2*p.BlockPages())
	}
	return o
}

func variantsFor(t *testing.T) []mcheck.Profile {
	var out []mcheck.Profile
	kv := func(s string) *mcheck.Kernel { k, _ := mcheck.ParseKernel(s); return &k }
	for _, n := range mcheck.ProfileNames() {
		base, _ := mcheck.LookupProfile(n)
		if !base.Scaled && os.Getenv("LOCKSTEP_BIG") == "" {
			continue
		}
		if !base.Scaled {
			// big profiles: the per-pfn model is slow; defaults plus a few kernels only
			for _, k := range []string{"", "6.6", "6.1"} {
				o := mcheck.Overrides{}
				if k != "" {
					o.Kernel = kv(k)
				}
				if p, err := base.WithOverrides(o); err == nil {
					out = append(out, p)
				}
			}
			continue
		}
		for _, k := range []string{"", "6.8", "6.6", "6.1", "5.15", "5.10"} {
			for _, md := range []mcheck.Mode{base.Mode, mcheck.ModeOn, mcheck.ModeForce, mcheck.ModeOff} {
				for _, hvo := range []bool{base.HVO, !base.HVO} {
					o := mcheck.Overrides{Mode: &md, HVO: &hvo}
					if k != "" {
						o.Kernel = kv(k)
					}
					if base.Scaled {
						nb := 3
						o.Blocks = &nb
					}
					p, err := base.WithOverrides(o)
					if err == nil {
						out = append(out, p)
					}
				}
			}
		}
	}
	return out
}

// run steps model and impl in lockstep, comparing results, snapshots and impl.Check (the
// invariant catalogue is not this package's business). Returns the failing step or -1.
func run(t *testing.T, p mcheck.Profile, ops []mcheck.Op) (int, string) {
	q, err := checker.NewPair(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := mcheck.Diff(q.Model.Snapshot(), q.Impl.Snapshot(), "model", "impl", 10); len(d) > 0 {
		return 0, "initial: " + strings.Join(d, "\n")
	}
	for i, op := range ops {
		r1 := q.Model.Apply(op)
		r2 := q.Impl.Apply(op)
		if r1 != r2 {
			return i, fmt.Sprintf("result model=%s impl=%s", r1, r2)
		}
		if d := mcheck.Diff(q.Model.Snapshot(), q.Impl.Snapshot(), "model", "impl", 10); len(d) > 0 {
			return i, strings.Join(d, "\n")
		}
		if c := q.Impl.Check(); len(c) > 0 {
			return i, "check: " + strings.Join(c, "\n")
		}
		if q.Impl.Fingerprint() != q.Impl.Clone().Fingerprint() {
			return i, "clone fingerprint differs"
		}
	}
	return -1, ""
}

func TestLockstepRandom(t *testing.T) {
	seeds := 40
	if s := os.Getenv("LOCKSTEP_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	steps := 300
	if s := os.Getenv("LOCKSTEP_STEPS"); s != "" {
		steps, _ = strconv.Atoi(s)
	}
	fails := 0
	for _, p := range variantsFor(t) {
		seed0 := 0
		if s := os.Getenv("LOCKSTEP_SEED0"); s != "" {
			seed0, _ = strconv.Atoi(s)
		}
		for seed := seed0; seed < seed0+seeds; seed++ {
			r := rand.New(rand.NewSource(int64(seed)))
			var ops []mcheck.Op
			focused := seed%2 == 1
			for i := 0; i < steps; i++ {
				if focused {
					ops = append(ops, focusedOp(r, &p))
				} else {
					ops = append(ops, randOp(r, &p))
				}
			}
			step, msg := run(t, p, ops)
			if step >= 0 {
				fails++
				if fails <= 4 {
					t.Errorf("%s kernel=%s mode=%s hvo=%v seed %d step %d: %s\n%s", p.Name, p.Kernel, p.Mode, p.HVO, seed, step+1, ops[step], msg)
					for i := max(0, step-20); i <= step; i++ {
						t.Logf("  %d: %s", i+1, ops[i])
					}
				}
				break
			}
		}
	}
	if fails > 0 {
		t.Errorf("%d failing variants", fails)
	}
}

// TestLockstepScenarios replays hand-written scenarios that random walks reach rarely.
func TestLockstepScenarios(t *testing.T) {
	kv := func(s string) *mcheck.Kernel { k, _ := mcheck.ParseKernel(s); return &k }
	for _, sc := range []struct {
		profile, kernel string
		ops             string
	}{
		// a later block of a per-block add fails in __add_pages: the earlier blocks are undone
		{"x86_64-4k", "", `memremap subsection=2178 nr=1 reserve=0 free=0
memremap subsection=2112 nr=70 reserve=0 free=0
memunmap subsection=2178
add_memory block=32 nr=3 memmap_on_memory=1
remove_memory block=33 nr=1
add_memory block=32 nr=3 memmap_on_memory=1
online block=33 type=movable
online block=32 type=movable
online block=34 type=auto
offline block=33
online block=33 type=auto
offline block=32
offline block=34
offline block=33
remove_memory block=32 nr=3`},
		{"tiny-x86", "6.1", `add_memory block=1 nr=1 memmap_on_memory=1
online block=1 type=kernel
hugetlb_alloc block=1
hugetlb_vmemmap_optimize block=1
hugetlb_alloc block=1
pin block=1
hugetlb_alloc block=1
hugetlb_vmemmap_optimize block=1
offline block=1
unpin block=1
offline block=1
remove_memory block=1 nr=1`},
		{"tiny-x86", "", `add_memory block=1 nr=1 memmap_on_memory=0
online block=1 type=movable
hugetlb_alloc block=1
hugetlb_vmemmap_optimize block=1
hugetlb_alloc block=1
hugetlb_vmemmap_optimize block=1
alloc_contig pfn=0x40 nr=64
hugetlb_alloc block=1
hugetlb_vmemmap_optimize block=1
offline block=1
remove_memory block=1 nr=1
add_memory block=1 nr=1 memmap_on_memory=1`},
		{"tiny-x86", "5.10off", `add_memory block=1 nr=1 memmap_on_memory=1
online block=1 type=auto
hugetlb_alloc block=1
hugetlb_vmemmap_optimize block=1
memremap subsection=3 nr=1 reserve=0 free=0
pfn_to_online_page pfn=0x30
pfn_to_online_page pfn=0x20
alloc_contig pfn=0x20 nr=8
memunmap subsection=3
pfn_valid pfn=0x30
memremap subsection=3 nr=2 reserve=4 free=4
memunmap subsection=3
memremap subsection=3 nr=6 reserve=1 free=9`},
		{"ppc64-64k", "", `add_memory block=8 nr=2 memmap_on_memory=1
add_memory block=10 nr=1 memmap_on_memory=0
online block=9 type=kernel
online block=10 type=kernel
online block=8 type=kernel
fail_next kind=notifier
offline block=9
offline block=9
offline block=10
offline block=8
remove_memory block=8 nr=1
remove_memory block=9 nr=2
remove_memory block=9 nr=1
remove_memory block=10 nr=1
memremap subsection=1024 nr=100 reserve=3 free=40
memunmap subsection=1024`},
		{"tiny-ppc", "", `add_memory block=8 nr=2 memmap_on_memory=1
online block=8 type=movable
fail_next kind=notifier
online block=9 type=movable
online block=9 type=movable
offline block=8
fail_next kind=notifier
online block=8 type=movable
remove_memory block=8 nr=1
memremap subsection=7 nr=1 reserve=0 free=2
memremap subsection=33 nr=3 reserve=1 free=1
memunmap subsection=33`},
		{"tiny-arm64", "6.6", `add_memory block=1 nr=1 memmap_on_memory=1
add_memory block=2 nr=2 memmap_on_memory=1
memremap subsection=3 nr=1 reserve=2 free=4
online block=1 type=movable
online block=2 type=kernel
hugetlb_alloc block=2
hugetlb_vmemmap_optimize block=2
hugetlb_alloc block=1
hugetlb_vmemmap_optimize block=1
offline block=1
remove_memory block=1 nr=1
fail_next kind=vmemmap
add_memory block=1 nr=1 memmap_on_memory=1
fail_next kind=vmemmap
memremap subsection=12 nr=3 reserve=0 free=8`},
	} {
		base, err := mcheck.LookupProfile(sc.profile)
		if err != nil {
			t.Fatal(err)
		}
		o := mcheck.Overrides{}
		if k, ok := strings.CutSuffix(sc.kernel, "off"); ok {
			off, hvo := mcheck.ModeOff, false
			o.Mode, o.HVO = &off, &hvo
			o.Kernel = kv(k)
		} else if sc.kernel != "" {
			o.Kernel = kv(sc.kernel)
		}
		p, err := base.WithOverrides(o)
		if err != nil {
			t.Fatal(err)
		}
		var ops []mcheck.Op
		for _, l := range strings.Split(sc.ops, "\n") {
			op, err := mcheck.ParseOp(l)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, op)
		}
		if step, msg := run(t, p, ops); step >= 0 {
			t.Errorf("%s %s step %d %s: %s", sc.profile, sc.kernel, step+1, ops[step], msg)
		}
	}
}
