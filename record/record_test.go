package record

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcheck/mcheck"
)

type cpioEntry struct {
	name string
	mode uint32
	data string
}

// readNewc is a minimal newc reader for the tests.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			t.Fatalf("truncated header at %d", off)
		}
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(h[6+8*i:6+8*i+8], 16, 32)
			if err != nil {
				t.Fatalf("bad field %d: %v", i, err)
			}
			return int(v)
		}
		mode, size, nameLen := field(1), field(6), field(11)
		nameEnd := off + 110 + nameLen
		name := string(b[off+110 : nameEnd-1])
		if b[nameEnd-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		dataOff := align(nameEnd)
		data := string(b[dataOff : dataOff+size])
		off = align(dataOff + size)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name, uint32(mode), data})
	}
}

func TestCpioWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCpioWriter(&buf)
	c.Dir("bin", 0o755)
	c.File("bin/x", 0o755, []byte("hello"))
	c.File("odd", 0o644, []byte("abc"))
	c.Symlink("bin/sh", "x")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Fatalf("archive length %d not 4-aligned", buf.Len())
	}
	got := readNewc(t, buf.Bytes())
	want := []cpioEntry{{"bin", 0o040755, ""}, {"bin/x", 0o100755, "hello"}, {"odd", 0o100644, "abc"}, {"bin/sh", 0o120777, "x"}}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestBuildInitramfs(t *testing.T) {
	img, err := buildInitramfs([]byte("fake busybox"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]cpioEntry{}
	for _, e := range readNewc(t, raw) {
		names[e.name] = e
	}
	if e := names["init"]; e.mode != 0o100755 || !strings.HasPrefix(e.data, "#!/bin/busybox sh") {
		t.Errorf("init = mode %o %q", e.mode, e.data[:min(len(e.data), 30)])
	}
	if names["bin/busybox"].data != "fake busybox" {
		t.Errorf("busybox missing")
	}
	for _, want := range []string{"OBSERVE)", "STATE)", "/dev/ttyS1", "dmesg -c", "/proc/zoneinfo", "@@END"} {
		if !strings.Contains(names["init"].data, want) {
			t.Errorf("init script lacks %q", want)
		}
	}
}

func TestParseEndLineAndSections(t *testing.T) {
	if c, rc, ok := parseEndLine("@@END STATE rc=1"); !ok || c != "STATE" || rc != 1 {
		t.Errorf("parseEndLine = %q %d %v", c, rc, ok)
	}
	for _, bad := range []string{"@@END STATE", "@@END STATE rc=x", "END STATE rc=0", "@@READY 6.1"} {
		if _, _, ok := parseEndLine(bad); ok {
			t.Errorf("parseEndLine(%q) accepted", bad)
		}
	}
	s := splitSections([]string{"junk", "@@S a", "1", "2", "@@S b", "@@S c", "x"})
	if strings.Join(s["a"], ",") != "1,2" || len(s["b"]) != 0 || s["b"] == nil || strings.Join(s["c"], ",") != "x" {
		t.Errorf("splitSections = %v", s)
	}
	if _, ok := s[""]; ok {
		t.Errorf("lines before the first section kept")
	}
}

const zoneinfoSample = `Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 262
      nr_active_anon 482
  pages free     3808
        boost    0
        min      190
        low      237
        high     284
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 869, 869, 869, 869)
      nr_free_pages 3808
  pagesets
    cpu: 0
              count: 0
              high:  0
              batch: 1
  vm stats threshold: 0
  node_unreclaimable:  0
  start_pfn:           1
Node 0, zone   Normal
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 0, 0, 0)
Node 0, zone  Movable
  pages free     32201
        boost    0
        min      32
        low      425
        high     818
        spanned  32768
        present  32768
        managed  32256
        cma      0
        protection: (0, 0, 0, 0, 0)
  pagesets
    cpu: 0
              count: 12
              high:  999
              batch: 63
  node_unreclaimable:  0
  start_pfn:           1048576
`

func TestParseZoneinfo(t *testing.T) {
	zs, err := parseZoneinfo(strings.Split(zoneinfoSample, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(zs) != 3 {
		t.Fatalf("%d zones", len(zs))
	}
	d := zs[0]
	if d.Zone != "DMA" || d.High != 284 || d.Spanned != 4095 || d.Present != 3998 || d.Managed != 3840 || d.free != 3808 ||
		d.StartPfn == nil || *d.StartPfn != 1 || len(d.Protection) != 5 || d.Protection[1] != 869 {
		t.Errorf("DMA = %+v", d)
	}
	if n := zs[1]; n.Zone != "Normal" || n.StartPfn != nil || n.Present != 0 {
		t.Errorf("Normal = %+v (an empty zone has no start_pfn)", n)
	}
	if m := zs[2]; m.High != 818 || m.Managed != 32256 || *m.StartPfn != 1048576 {
		t.Errorf("Movable = %+v (pageset high: must not override the watermark)", m)
	}
	b, _ := json.Marshal(zs[1])
	if strings.Contains(string(b), "start_pfn") {
		t.Errorf("empty zone marshals start_pfn: %s", b)
	}
	if _, err := parseZoneinfo([]string{"nothing"}); err == nil {
		t.Errorf("no zones accepted")
	}
}

func TestParseBlocks(t *testing.T) {
	attrs := []string{"memory32/state:offline", "memory0/state:online", "memory32/phys_index:00000020",
		"memory0/phys_index:00000000", "memory32/valid_zones:Normal Movable", "memory32/removable:1", "memory32/online:0"}
	bl, err := parseBlocks(attrs, []string{"memory0/node0", "memory32/node0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bl) != 2 || bl[0].Name != "memory0" || bl[1].Block != 32 {
		t.Fatalf("blocks = %+v", bl)
	}
	if b := bl[1]; b.PhysIndexInt != 32 || b.ValidZones != "Normal Movable" || b.Node != "0" || b.State != "offline" || b.Online != "0" {
		t.Errorf("memory32 = %+v", b)
	}
	if _, err := parseBlocks([]string{"memoryX/state:online"}, nil); err == nil {
		t.Errorf("bad name accepted")
	}
}

func TestMeminfoVmstatPick(t *testing.T) {
	mi := parseMeminfo([]string{"MemTotal:        915172 kB", "MemFree:  1 kB", "HugePages_Total:       0", "garbage"})
	if v, _ := mi.Get("MemTotal"); v != 915172 {
		t.Errorf("MemTotal = %d", v)
	}
	p := pick(mi, "HugePages_Total", "Missing", "MemTotal")
	b, _ := json.Marshal(p)
	if string(b) != `{"HugePages_Total":0,"MemTotal":915172}` {
		t.Errorf("pick = %s", b)
	}
	vm := parseVmstat([]string{"nr_free_pages 5", "nr_memmap_pages 512", "bad line here"})
	if v, ok := vm.Get("nr_memmap_pages"); !ok || v != 512 {
		t.Errorf("vmstat = %v", vm)
	}
	fv := parseFileValues([]string{"/sys/module/memory_hotplug/parameters/online_policy:contig-zones", "/x/memmap_on_memory:Y"})
	b, _ = json.Marshal(fv)
	if string(b) != `{"memmap_on_memory":"Y","online_policy":"contig-zones"}` {
		t.Errorf("params = %s", b)
	}
}

func TestErrnoFromMessage(t *testing.T) {
	for msg, want := range map[string]string{
		"sh: write error: Device or resource busy":                                                      "EBUSY",
		"sh: write error: Invalid argument":                                                             "EINVAL",
		"/init: line 27: can't create /sys/devices/system/memory/memory32/state: nonexistent directory": "ENOENT",
		"sh: write error: Cannot allocate memory":                                                       "ENOMEM",
		"sh: write error: Operation not permitted":                                                      "EPERM",
		"sh: write error: No such file or directory":                                                    "ENOENT",
		"": "", "something odd": "",
	} {
		if got := errnoFromMessage(msg); got != want {
			t.Errorf("errnoFromMessage(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestClassifyDmesg(t *testing.T) {
	kept, dump, other := classifyDmesg([]string{
		"[    0.000000] Linux version 6.12",
		"[    0.000000] Zone ranges:",
		"[    0.000000]   DMA      [mem 0x0000000000001000-0x0000000000ffffff]",
		"[    1.000000] clocksource: tsc",
		"[    2.000000] memory memory33: Offline failed.",
		"[    2.000001] page: refcount:1 mapcount:0 mapping:0 index:0x0 pfn:0x108000",
		"[    2.000002] flags: 0x17ffffc0000000(node=0|zone=3)",
		"[    2.000003] page dumped because: migration failure",
		"",
	})
	if strings.Join(kept, "|") != "Zone ranges:|  DMA      [mem 0x0000000000001000-0x0000000000ffffff]|memory memory33: Offline failed." {
		t.Errorf("kept = %q", kept)
	}
	if len(dump) != 3 || !strings.HasPrefix(dump[0], "page: refcount") {
		t.Errorf("dump = %q", dump)
	}
	if strings.Join(other, "|") != "Linux version 6.12|clocksource: tsc" {
		t.Errorf("other = %q", other)
	}
}

func TestParseConfig(t *testing.T) {
	c := parseConfig("CONFIG_MEMORY_HOTPLUG=y\n# CONFIG_CMA is not set\nCONFIG_VIRTIO_MEM=m\nCONFIG_X=\"s\"\n",
		[]string{"CONFIG_MEMORY_HOTPLUG", "CONFIG_CMA", "CONFIG_VIRTIO_MEM", "CONFIG_NOPE", "CONFIG_X"})
	b, _ := json.Marshal(c)
	if string(b) != `{"CONFIG_MEMORY_HOTPLUG":"y","CONFIG_CMA":"n","CONFIG_VIRTIO_MEM":"m","CONFIG_NOPE":"(absent)","CONFIG_X":"s"}` {
		t.Errorf("config = %s", b)
	}
}

func agentObserveSample(extraBlock string) []string {
	l := []string{"@@S block_size_bytes", "8000000", "@@S auto_online_blocks", "offline",
		"@@S params", "/sys/module/memory_hotplug/parameters/memmap_on_memory:Y",
		"@@S blockattrs", "memory0/state:online", "memory0/phys_index:00000000", "memory0/valid_zones:none"}
	if extraBlock != "" {
		l = append(l, "memory32/state:"+extraBlock, "memory32/phys_index:00000020", "memory32/valid_zones:Movable")
	}
	l = append(l, "@@S blocknodes", "memory0/node0", "@@S zoneinfo")
	l = append(l, strings.Split(zoneinfoSample, "\n")...)
	l = append(l, "@@S meminfo", "MemTotal: 1000 kB", "MemFree: 10 kB", "HugePages_Total: 0",
		"@@S vmstat", "nr_free_pages 7", "nr_memmap_pages 512",
		"@@S iomem", "00001000-0009fbff : System RAM", "",
		"@@S hugepages", "nr_hugepages:0", "hugetlb_optimize_vmemmap:0",
		"@@S dmesg", "[    3.0] Built 1 zonelists, mobility grouping on.  Total pages: 1", "[    3.1] Fallback order for Node 0: 0")
	return l
}

func TestBuildObservationAndSummary(t *testing.T) {
	o, err := buildObservation(agentObserveSample("online"))
	if err != nil {
		t.Fatal(err)
	}
	if o.BlockSizeBytes != 134217728 || o.AutoOnlineBlocks != "offline" || len(o.Blocks) != 2 || len(o.Zones) != 3 {
		t.Fatalf("observation = %+v", o)
	}
	if v, _ := o.VmstatMemmap.Get("nr_memmap_pages"); v != 512 {
		t.Errorf("vmstat_memmap = %v", o.VmstatMemmap)
	}
	if len(o.Iomem) != 1 || len(o.Dmesg) != 1 || len(o.Volatile.DmesgOther) != 1 {
		t.Errorf("iomem %q dmesg %q other %q", o.Iomem, o.Dmesg, o.Volatile.DmesgOther)
	}
	if v, _ := o.Volatile.ZoneFreePages.Get("0/Movable"); v != 32201 {
		t.Errorf("zone_free_pages = %v", o.Volatile.ZoneFreePages)
	}
	st := Step{Step: 2, Op: "state", Args: orderedMap[any]{{"dimm", "d0"}, {"block", 0}, {"value", "online_movable"}}, Observation: o}
	r := summarize(st, false, strp("EBUSY"), nil, map[string]bool{"memory0": true})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"step":2,"op":"state","args":{"dimm":"d0","block":0,"value":"online_movable"},"ok":false,"errno":"EBUSY","ejected":null,` +
		`"blocks":{"memory32":"online[Movable]"},"zones":{"DMA":{"spanned":4095,"present":3998,"managed":3840,"start_pfn":1},` +
		`"Movable":{"spanned":32768,"present":32768,"managed":32256,"start_pfn":1048576}},"MemTotal_kB":1000,"HugePages_Total":0}`
	if string(b) != want {
		t.Errorf("summary row\n got %s\nwant %s", b, want)
	}
	if _, err := buildObservation([]string{"@@S block_size_bytes", "8000000"}); err == nil {
		t.Errorf("incomplete observation accepted")
	}
}

func parse(t *testing.T, src string) *mcheck.Trace {
	t.Helper()
	tr, err := mcheck.ParseTrace(strings.NewReader(src), "t")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

const hdr = "# mcheck trace v1\n# profile: x86_64-4k\n# kernel: 6.12\n# memmap_on_memory: on\n# description: two dimms\n"

func TestMapTrace(t *testing.T) {
	s, err := MapTrace(parse(t, hdr+`add_memory block=32 nr=1 memmap_on_memory=1
add_memory block=33 nr=2 memmap_on_memory=1
online block=34 type=kernel
online block=32 type=auto
offline block=34
remove_memory block=33 nr=2
remove_memory block=33 nr=2
`), "two")
	if err != nil {
		t.Fatal(err)
	}
	if s.Description != "two dimms" || s.BootParam() != "1" || s.OutName() != "two__k6.12.json" || s.BlockBytes != 128<<20 {
		t.Errorf("scenario = %+v", s)
	}
	want := []Action{
		{Kind: ActPlug, DIMM: "d0", First: 32, Nr: 1, Size: 128 << 20},
		{Kind: ActPlug, DIMM: "d1", First: 33, Nr: 2, Size: 256 << 20},
		{Kind: ActState, DIMM: "d1", Block: 34, Index: 1, Value: "online_kernel"},
		{Kind: ActState, DIMM: "d0", Block: 32, Index: 0, Value: "online"},
		{Kind: ActState, DIMM: "d1", Block: 34, Index: 1, Value: "offline"},
		{Kind: ActUnplug, DIMM: "d1", First: 33, Nr: 2},
		{Kind: ActUnplug, DIMM: "d1", First: 33, Nr: 2},
	}
	if len(s.Actions) != len(want) {
		t.Fatalf("%d actions", len(s.Actions))
	}
	for i, w := range want {
		g := s.Actions[i]
		if g.Kind != w.Kind || g.DIMM != w.DIMM || g.Value != w.Value || g.Index != w.Index || g.Size != w.Size ||
			(w.Kind != ActState && (g.First != w.First || g.Nr != w.Nr)) || (w.Kind == ActState && g.Block != w.Block) {
			t.Errorf("action %d = %+v, want %+v", i, g, w)
		}
	}
	if eb := s.Actions[1].ExpectedBlocks(); len(eb) != 2 || eb[0] != 33 || eb[1] != 34 {
		t.Errorf("expected blocks %v", eb)
	}
	if s.Actions[2].Line != 8 || s.Actions[2].Op != "online block=34 type=kernel" {
		t.Errorf("line/op = %d %q", s.Actions[2].Line, s.Actions[2].Op)
	}
	for _, bad := range []string{
		"online block=32 type=movable\n",                                                             // no DIMM
		"add_memory block=32 nr=2 memmap_on_memory=1\nremove_memory block=32 nr=1\n",                 // partial DIMM
		"add_memory block=32 nr=1 memmap_on_memory=1\nadd_memory block=32 nr=1 memmap_on_memory=1\n", // overlap
		"add_memory block=8 nr=1 memmap_on_memory=1\n",                                               // boot memory
		"add_memory block=32 nr=1 memmap_on_memory=1\npin block=32\n",                                // unsupported
	} {
		if _, err := MapTrace(parse(t, hdr+bad), "bad"); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
	noKernel := "# mcheck trace v1\n# profile: x86_64-4k\n# memmap_on_memory: on\nadd_memory block=32 nr=1 memmap_on_memory=1\n"
	if _, err := MapTrace(parse(t, noKernel), "nok"); err == nil {
		t.Errorf("trace without kernel header accepted")
	}
	force := strings.Replace(hdr, "memmap_on_memory: on", "memmap_on_memory: force", 1)
	if s, err := MapTrace(parse(t, force+"add_memory block=32 nr=1 memmap_on_memory=1\n"), "f"); err != nil || s.BootParam() != "force" {
		t.Errorf("force: %v %v", s, err)
	}
}

// The shipped scenarios must all map, and their file names must match their headers.
func TestShippedScenarios(t *testing.T) {
	files, err := ScenarioFiles(filepath.Join("..", "corpus", "kernel", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		s, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if s.Description == "" {
			t.Errorf("%s: no description", f)
		}
		if strings.TrimSuffix(filepath.Base(f), ".trace")+".json" != s.OutName() {
			t.Errorf("%s: output name %s", f, s.OutName())
		}
	}
}

func TestPickKernel(t *testing.T) {
	k61, _ := mcheck.ParseKernel("6.1")
	k612, _ := mcheck.ParseKernel("6.12")
	imgs := []KernelImage{{Release: "6.1.0-56-amd64", Kernel: k61}, {Release: "6.12.117+deb12-amd64", Kernel: k612}}
	if img, err := pickKernel(imgs, k61); err != nil || img.Release != "6.1.0-56-amd64" {
		t.Errorf("6.1 -> %v %v", img, err)
	}
	if img, err := pickKernel(imgs, k612); err != nil || img.Release != "6.12.117+deb12-amd64" {
		t.Errorf("6.12 -> %v %v", img, err)
	}
	k68, _ := mcheck.ParseKernel("6.8")
	if _, err := pickKernel(imgs, k68); err == nil {
		t.Errorf("6.8 found")
	}
}

// TestRecordQEMU boots a real kernel; it needs qemu-system-x86_64, busybox-static and the
// kernels unpacked by scripts/setup-conformance.sh.
func TestRecordQEMU(t *testing.T) {
	if os.Getenv("MCHECK_RECORD") != "1" {
		t.Skip("boots a kernel under QEMU: set MCHECK_RECORD=1 (after scripts/setup-conformance.sh) to run")
	}
	out := t.TempDir()
	var so, se bytes.Buffer
	scen := filepath.Join("..", "corpus", "kernel", "scenarios", "a_128M_movable_mmom1__k6.12.trace")
	rc := Main([]string{"--kernel-dir", filepath.Join("..", "build", "kernels"), "--out", out, "--log-dir", "",
		"--accel", "tcg", "--timeout", (5 * time.Minute).String(), scen}, &so, &se)
	if rc != 0 {
		t.Fatalf("rc %d\n%s\n%s", rc, so.String(), se.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "a_128M_movable_mmom1__k6.12.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec["status"] != "completed" || len(rec["steps"].([]any)) != 5 {
		t.Errorf("status %v, %d steps", rec["status"], len(rec["steps"].([]any)))
	}
}
