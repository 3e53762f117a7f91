package fuzz

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/mcheck/mcheck"
)

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// TestDecodeTotal: any bytes decode to a valid profile variant and at most MaxOps canonical,
// in-range ops that print and parse back.
func TestDecodeTotal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1500; i++ {
		data := randomBytes(r, r.IntN(400))
		p, ops := Decode(data)
		if err := p.Validate(); err != nil {
			t.Fatalf("Decode(%x): invalid profile: %v", data, err)
		}
		if !p.Scaled {
			t.Fatalf("Decode(%x): profile %s is not a scaled profile", data, p.Name)
		}
		if len(ops) > MaxOps {
			t.Fatalf("Decode: %d ops > %d", len(ops), MaxOps)
		}
		for _, op := range ops {
			CheckOpRoundTrip(t, op)
			if op.Block > p.NrBlocks() || op.Pfn > p.NrPfns() || op.Subsection > p.NrPfns()/p.PagesPerSubsection() {
				t.Fatalf("op %s out of range for %s", op, knobKey(p))
			}
		}
	}
}

// TestEncodeInvertsDecode: Decode(Encode(Decode(x))) == Decode(x), and Encode is canonical.
func TestEncodeInvertsDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 1000; i++ {
		p, ops := Decode(randomBytes(r, r.IntN(300)))
		if !Encodable(p, ops) {
			t.Fatalf("decoded input not encodable: %s %v", knobKey(p), ops)
		}
		enc := Encode(p, ops)
		p2, ops2 := Decode(enc)
		if knobKey(p2) != knobKey(p) || !reflect.DeepEqual(ops, ops2) && len(ops)+len(ops2) > 0 {
			t.Fatalf("round trip:\n%s %v\n%s %v", knobKey(p), ops, knobKey(p2), ops2)
		}
		if enc2 := Encode(p2, ops2); string(enc2) != string(enc) {
			t.Fatalf("Encode not canonical: %x vs %x", enc, enc2)
		}
	}
}

func TestEncodeFoldsOutOfRange(t *testing.T) {
	p, _ := Decode(nil)
	ops := []mcheck.Op{{Kind: mcheck.OpOnline, Block: 1000}, {Kind: mcheck.OpPfnValid, Pfn: 1 << 20}}
	if Encodable(p, ops) {
		t.Fatal("out-of-range ops reported encodable")
	}
	_, back := Decode(Encode(p, ops))
	if len(back) != 2 || back[0].Kind != mcheck.OpOnline || back[1].Kind != mcheck.OpPfnValid {
		t.Fatalf("folded ops: %v", back)
	}
}

// TestProfiles: variants validate, start with each base profile's defaults, and cover every
// kernel family and memmap_on_memory mode.
func TestProfiles(t *testing.T) {
	vs := Profiles()
	if len(vs) < 3 {
		t.Fatalf("%d profile variants", len(vs))
	}
	if p, _ := Decode(nil); p.Name != "tiny-x86" {
		t.Fatalf("empty input decodes to %s, want tiny-x86", p.Name)
	}
	kps := map[mcheck.KernelProfile]bool{}
	modes := map[mcheck.Mode]bool{}
	for _, n := range baseNames {
		base, _ := mcheck.LookupProfile(n)
		if knobKey(variantsOf[n][0]) != knobKey(base) {
			t.Errorf("%s: first variant %s is not the defaults", n, knobKey(variantsOf[n][0]))
		}
		if len(variantsOf[n]) > 256 {
			t.Errorf("%s: %d variants do not fit one byte", n, len(variantsOf[n]))
		}
	}
	for _, v := range vs {
		if err := v.Validate(); err != nil {
			t.Error(err)
		}
		back, err := (&mcheck.Trace{Profile: v.Name, Overrides: mcheck.FullOverrides(v)}).ResolveProfile()
		if err != nil || knobKey(back) != knobKey(v) {
			t.Errorf("variant %s does not resolve from its trace header", knobKey(v))
		}
		kps[v.KP()] = true
		modes[v.Mode] = true
	}
	if len(kps) != 5 || len(modes) != 3 {
		t.Errorf("kernel families %v, modes %v", kps, modes)
	}
}

// TestDrawCoversAlphabet: random choices reach every op kind and every value of the small
// parameters on every base profile.
func TestDrawCoversAlphabet(t *testing.T) {
	loadVariants()
	if len(baseNames) < 3 {
		t.Fatalf("base profiles %v", baseNames)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range baseNames {
		p := variantsOf[n][0]
		kinds := map[mcheck.OpKind]bool{}
		blocks := map[int]bool{}
		for i := 0; i < 5000; i++ {
			op := Draw(&p, &byteSource{data: randomBytes(r, 8)})
			kinds[op.Kind] = true
			if hasBlock(op.Kind) {
				blocks[op.Block] = true
			}
		}
		if len(kinds) != int(mcheck.NrOpKinds) {
			t.Errorf("%s: kinds %v", n, kinds)
		}
		for b := p.HotplugStart; b < p.HotplugStart+p.HotplugBlocks; b++ {
			if !blocks[b] {
				t.Errorf("%s: block %d never drawn", n, b)
			}
		}
		if !blocks[p.NrBlocks()] || !blocks[0] {
			t.Errorf("%s: blocks %v miss the out-of-range or boot block", n, blocks)
		}
	}
}

func hasBlock(k mcheck.OpKind) bool {
	for _, key := range mcheck.Specs[k].Keys {
		if key == "block" {
			return true
		}
	}
	return false
}

func TestHandSeedsDecode(t *testing.T) {
	want := []string{
		"",
		"add_memory block=1 nr=1 memmap_on_memory=0|online block=1 type=movable",
		"add_memory block=8 nr=2 memmap_on_memory=0|online block=9 type=auto|pin block=9",
		"memremap subsection=4 nr=4 reserve=0 free=16",
		"fail_next kind=usage|add_memory block=1 nr=1 memmap_on_memory=1",
	}
	for i, w := range want {
		_, ops := Decode(handSeeds[i])
		var got []string
		for _, o := range ops {
			got = append(got, o.String())
		}
		if g := join(got); g != w {
			t.Errorf("hand seed %d decodes to %q, want %q", i, g, w)
		}
	}
	_, ops := Decode(handSeeds[5])
	seen := map[mcheck.OpKind]bool{}
	for _, o := range ops {
		seen[o.Kind] = true
	}
	if len(seen) != int(mcheck.NrOpKinds) {
		t.Errorf("the every-kind seed decodes to %v", ops)
	}
}

func join(l []string) string {
	s := ""
	for i, x := range l {
		if i > 0 {
			s += "|"
		}
		s += x
	}
	return s
}
