package fuzz

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcheck/mcheck"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func opsText(ops []mcheck.Op) string {
	var l []string
	for _, o := range ops {
		l = append(l, o.String())
	}
	return strings.Join(l, "\n")
}

func TestImportNativeFuzzFile(t *testing.T) {
	p, _ := mcheck.LookupProfile("tiny-ppc")
	ops := []mcheck.Op{
		{Kind: mcheck.OpAddMemory, Block: 8, Nr: 1, MMOM: true},
		{Kind: mcheck.OpOnline, Block: 8, Type: mcheck.OnlineMovable},
		{Kind: mcheck.OpPfnValid, Pfn: 0x200},
	}
	data := Encode(p, ops)
	// The format `go test` writes: a version line, then one Go literal per argument.
	path := writeFile(t, "0123abcd", "go test fuzz v1\n[]byte("+strconv.Quote(string(data))+")\n")
	tr, err := ImportFileInject(path, []string{"some-fault"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Profile != "tiny-ppc" || opsText(tr.Ops) != opsText(ops) || strings.Join(tr.Inject, ",") != "some-fault" {
		t.Fatalf("imported:\n%s", tr)
	}
	if q, err := tr.ResolveProfile(); err != nil || knobKey(q) != knobKey(p) {
		t.Fatalf("profile %v (%v)", q, err)
	}
	t.Setenv(InjectEnv, "a,b")
	tr, err = ImportFile(path)
	if err != nil || strings.Join(tr.Inject, ",") != "a,b" {
		t.Fatalf("ImportFile inject %v, err %v", tr.Inject, err)
	}
}

func TestImportOtherFormats(t *testing.T) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	ops := []mcheck.Op{{Kind: mcheck.OpFailNext, Fault: mcheck.FaultNotifier}, {Kind: mcheck.OpAddMemory, Block: 2, Nr: 1}}
	data := Encode(p, ops)

	// go-fuzz crashers and corpus files: raw bytes.
	tr, err := ImportFileInject(writeFile(t, "crasher", string(data)), nil)
	if err != nil || opsText(tr.Ops) != opsText(ops) || len(tr.Inject) != 0 {
		t.Fatalf("raw bytes: %v\n%s", err, tr)
	}
	// A trace file is returned as is.
	text := MakeTrace(p, []string{"f"}, ops, nil).String()
	tr, err = ImportFileInject(writeFile(t, "x.trace", text), nil)
	if err != nil || tr.String() != text {
		t.Fatalf("trace: %v\n%s", err, tr)
	}
	// A FuzzTrace input is trace text.
	tr, err = ImportFileInject(writeFile(t, "s", "go test fuzz v1\nstring("+strconv.Quote(text)+")\n"), nil)
	if err != nil || tr.String() != text {
		t.Fatalf("FuzzTrace file: %v\n%s", err, tr)
	}
	// Malformed native files are errors, not panics.
	for _, bad := range []string{
		"go test fuzz v1\n",
		"go test fuzz v1\n[]byte(\"x\")\n[]byte(\"y\")\n",
		"go test fuzz v1\nint(3)\n",
		"go test fuzz v1\n[]byte(\"\\q\")\n",
	} {
		if _, err := ImportFileInject(writeFile(t, "bad", bad), nil); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := ImportFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestImportRapidFailFileLog: a rapid fail file whose comments hold the logged trace.
func TestImportRapidFailFileLog(t *testing.T) {
	p, _ := mcheck.LookupProfile("tiny-x86")
	tr := MakeTrace(p, []string{"online-skips-vmemmap-present"}, []mcheck.Op{
		{Kind: mcheck.OpAddMemory, Block: 1, Nr: 1, MMOM: true},
		{Kind: mcheck.OpOnline, Block: 1, Type: mcheck.OnlineKernel},
	}, nil)
	tr.Expect = "divergence"
	var b strings.Builder
	b.WriteString("# 2026/01/01 00:00:00.000000 [TestX] [rapid] draw profile: ...\n")
	for _, l := range strings.Split("mcheck finding: step 2: ...\n"+traceBegin+"\n"+tr.String()+traceEnd, "\n") {
		b.WriteString("# " + l + "\n")
	}
	b.WriteString("# \nv0.4.8#123\n0x1\n0x0\n")
	got, err := ImportFileInject(writeFile(t, "TestX-1-2.fail", b.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != tr.String() {
		t.Fatalf("got\n%s\nwant\n%s", got, tr)
	}
}
