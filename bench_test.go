package mcheck_test

import (
	"math/rand/v2"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/checker"
	"github.com/mcheck/mcheck/impl"
	"github.com/mcheck/mcheck/model"
)

// randomMix is a seeded stream of ops over every hot-pluggable block of p: adds and removes
// (with and without memmap_on_memory), onlines of every kind, offlines, pins, hugetlb, contiguous
// allocations and queries — the same stream for model and impl.
func randomMix(p *mcheck.Profile, n int) []mcheck.Op {
	rng := rand.New(rand.NewPCG(42, 1))
	ops := make([]mcheck.Op, n)
	bp, pb := p.BlockPages(), p.PageblockPages()
	for i := range ops {
		b := p.HotplugStart + rng.IntN(p.HotplugBlocks)
		var o mcheck.Op
		switch r := rng.IntN(20); {
		case r < 4:
			o = mcheck.Op{Kind: mcheck.OpAddMemory, Block: b, Nr: 1, MMOM: rng.IntN(2) == 0}
		case r < 5:
			o = mcheck.Op{Kind: mcheck.OpRemoveMemory, Block: b, Nr: 1}
		case r < 9:
			o = mcheck.Op{Kind: mcheck.OpOnline, Block: b, Type: mcheck.OnlineType(rng.IntN(3))}
		case r < 11:
			o = mcheck.Op{Kind: mcheck.OpOffline, Block: b}
		case r < 12:
			o = mcheck.Op{Kind: mcheck.OpPin, Block: b}
		case r < 13:
			o = mcheck.Op{Kind: mcheck.OpUnpin, Block: b}
		case r < 14:
			o = mcheck.Op{Kind: mcheck.OpHugetlbAlloc, Block: b}
		case r < 15:
			o = mcheck.Op{Kind: mcheck.OpHugetlbFree, Block: b}
		case r < 16:
			o = mcheck.Op{Kind: mcheck.OpAllocContig, Pfn: b*bp + rng.IntN(4)*pb, Nr: pb}
		case r < 18:
			o = mcheck.Op{Kind: mcheck.OpPfnValid, Pfn: b*bp + rng.IntN(bp)}
		default:
			o = mcheck.Op{Kind: mcheck.OpPfnToOnlinePage, Pfn: b*bp + rng.IntN(bp)}
		}
		ops[i] = o
	}
	return ops
}

func x86With64Blocks(b *testing.B) mcheck.Profile {
	p, err := mcheck.LookupProfile("x86_64-4k")
	if err != nil {
		b.Fatal(err)
	}
	n := 64
	if p, err = p.WithOverrides(mcheck.Overrides{Blocks: &n}); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkRandomMix measures ops/second of the reference model and of the implementation on
// the same random op stream (x86_64-4k, 64 hot-pluggable blocks):
//
//	go test -run XXX -bench RandomMix .
func BenchmarkRandomMix(b *testing.B) {
	p := x86With64Blocks(b)
	ops := randomMix(&p, 1<<14)
	run := func(b *testing.B, fresh func() mcheck.Machine) {
		m := fresh()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := i % len(ops)
			if k == 0 && i > 0 {
				b.StopTimer()
				m = fresh()
				b.StartTimer()
			}
			m.Apply(ops[k])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	}
	b.Run("model", func(b *testing.B) { run(b, func() mcheck.Machine { return model.New(p) }) })
	b.Run("impl", func(b *testing.B) {
		run(b, func() mcheck.Machine {
			m, err := impl.New(p)
			if err != nil {
				b.Fatal(err)
			}
			return m
		})
	})
}

// The benchmark's op stream is one the two machines agree on (checked in lockstep with
// invariants, on fewer blocks to keep the per-pfn model's snapshots cheap).
func TestRandomMixLockstep(t *testing.T) {
	p, err := mcheck.LookupProfile("x86_64-4k")
	if err != nil {
		t.Fatal(err)
	}
	n := 6
	if p, err = p.WithOverrides(mcheck.Overrides{Blocks: &n}); err != nil {
		t.Fatal(err)
	}
	steps := 400
	if testing.Short() {
		steps = 100
	}
	f, err := checker.Run(p, nil, randomMix(&p, steps))
	if err != nil {
		t.Fatal(err)
	}
	if f != nil {
		t.Fatal(f)
	}
}
