package fuzz

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/corpus"
)

// SeedsEnv selects the seed corpus of FuzzLockstep: "all" (default: every corpus trace that
// encodes, plus the hand-written inputs), "hand" (hand-written inputs only, none of which
// triggers a planted fault) or "none" (the empty input only): use the last two to measure how
// fast the fuzzer finds a planted fault from scratch.
const SeedsEnv = "MCHECK_FUZZ_SEEDS"

// handSeeds are hand-written inputs: the empty input (tiny-x86, no ops), and a few shapes.
var handSeeds = [][]byte{
	{},
	// tiny-x86 defaults; add_memory block=1 nr=1 memmap_on_memory=0; online block=1 type=movable
	{0, 0, 0, 0, 0, 0, 2, 0, 2},
	// tiny-ppc defaults; add_memory block=8 nr=2 memmap_on_memory=0; online block=9 type=auto; pin block=9
	{1, 0, 0, 0, 1, 0, 2, 1, 0, 4, 1},
	// tiny-arm64 defaults; memremap at the hot-pluggable range, whole section, altmap free=16
	{2, 0, 9, 0, 3, 0, 16},
	// a fault injection then an add: fail_next kind=usage; add_memory block=1 nr=1 memmap_on_memory=1
	{0, 0, 12, 0, 0, 0, 0, 1},
	// every op kind once on tiny-x86 with zero parameters
	{0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9, 0, 0, 0, 0, 10, 0,
		11, 0, 0, 12, 0, 13, 0, 14, 0},
}

var (
	seedsOnce  sync.Once
	seedData   [][]byte
	seedTexts  []string
	seedsError error
)

// corpusSeeds encodes every corpus trace that Decode can reproduce exactly (loaded once).
func corpusSeeds() (data [][]byte, texts []string) {
	seedsOnce.Do(func() {
		// Tests run in the package directory: the corpus is next door.
		ts, files, err := corpus.Load(filepath.Join("..", "corpus"))
		if err != nil {
			seedsError = err
			return
		}
		for i, tr := range ts {
			if raw, err := os.ReadFile(files[i]); err == nil {
				seedTexts = append(seedTexts, string(raw))
			}
			p, err := tr.ResolveProfile()
			if err != nil || !Encodable(p, tr.Ops) {
				continue
			}
			seedData = append(seedData, Encode(p, tr.Ops))
		}
	})
	return seedData, seedTexts
}

// TestCorpusSeeds: the corpus loads and every seed trace encodes exactly.
func TestCorpusSeeds(t *testing.T) {
	data, texts := corpusSeeds()
	if seedsError != nil {
		t.Fatal(seedsError)
	}
	if len(data) < 10 || len(texts) < len(data) {
		t.Fatalf("%d byte seeds from %d traces", len(data), len(texts))
	}
}

// FuzzLockstep decodes the input into a profile and ops, runs them in lockstep and fails on any
// divergence or invariant violation, printing the finding and the trace. Faults named by
// $MCHECK_FUZZ_INJECT are planted in the impl.
//
//	go test -run='^$' -fuzz=FuzzLockstep -fuzztime=60s ./fuzz/
//	MCHECK_FUZZ_INJECT=online-skips-vmemmap-present MCHECK_FUZZ_SEEDS=hand go test -run='^$' -fuzz=FuzzLockstep ./fuzz/
//
// MCHECK_FUZZ_PLANTED_ONLY=1 ignores findings that do not need the planted faults (see
// CheckBytesPlantedOnly), to time the planted fault alone.
func FuzzLockstep(f *testing.F) {
	inject := InjectFromEnv()
	seeds := os.Getenv(SeedsEnv)
	for _, s := range handSeeds {
		if seeds != "none" || len(s) == 0 {
			f.Add(s)
		}
	}
	if seeds != "hand" && seeds != "none" {
		data, _ := corpusSeeds()
		for _, d := range data {
			f.Add(d)
		}
	}
	check := CheckBytes
	if os.Getenv(PlantedOnlyEnv) != "" {
		check = CheckBytesPlantedOnly
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data, inject)
	})
}

// FuzzTrace checks the trace text format (CheckTraceText): the parser never panics, whatever it
// accepts round-trips through Format, and every op round-trips through String / ParseOp.
//
//	go test -run='^$' -fuzz=FuzzTrace -fuzztime=60s ./fuzz/
func FuzzTrace(f *testing.F) {
	_, texts := corpusSeeds()
	for _, s := range texts {
		f.Add(s)
	}
	for _, s := range []string{
		"",
		mcheck.TraceMagic + "\n# profile: tiny-x86\nonline block=1 type=kernel\n",
		mcheck.TraceMagic + "\n# profile: tiny-ppc\n# kernel: 6.6.0-1-amd64\n# hvo: off\n# inject: a, b\nmemremap subsection=64 nr=8 reserve=0 free=8 # note\n",
		"pfn_valid pfn=0x10\npfn_valid pfn=16\nalloc_contig pfn=0 nr=0x40\n",
		"add_memory block=1 nr=1 memmap_on_memory=2\nfail_next kind=none\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		CheckTraceText(t, text)
	})
}

// BenchmarkDecodeRun measures one FuzzLockstep execution (decode + lockstep run) on random
// inputs of n bytes, without a planted fault; ns/op is the fuzzer's per-exec cost.
//
//	go test -run='^$' -bench=DecodeRun -benchtime=3s ./fuzz/
func BenchmarkDecodeRun(b *testing.B) {
	for _, n := range []int{32, 128, 256} {
		b.Run(strconv.Itoa(n)+"B", func(b *testing.B) {
			r := rand.New(rand.NewPCG(7, uint64(n)))
			inputs := make([][]byte, 256)
			ops := 0
			for i := range inputs {
				inputs[i] = randomBytes(r, n)
				_, o := Decode(inputs[i])
				ops += len(o)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := RunBytes(inputs[i%len(inputs)], nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ops)/float64(len(inputs)), "ops/input")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
		})
	}
}
