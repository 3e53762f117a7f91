package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcheck/mcheck"
)

// KernelImage is one unpacked kernel under build/kernels/<release>/ (scripts/setup-conformance.sh).
type KernelImage struct {
	Dir     string
	Release string
	Short   string // MAJOR.MINOR
	Package string
	Kernel  mcheck.Kernel
}

// findKernels lists the unpacked kernels in dir.
func findKernels(dir string) ([]KernelImage, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel dir: %v (run scripts/setup-conformance.sh)", err)
	}
	var out []KernelImage
	for _, e := range ents {
		d := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(d, "vmlinuz")); err != nil {
			continue
		}
		k, err := mcheck.ParseKernel(e.Name())
		if err != nil {
			continue
		}
		pkg, _ := os.ReadFile(filepath.Join(d, "package"))
		out = append(out, KernelImage{Dir: d, Release: e.Name(), Short: k.String(), Package: strings.TrimSpace(string(pkg)), Kernel: k})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out, nil
}

// pickKernel returns the image for a MAJOR.MINOR (the last one in release order if several).
func pickKernel(imgs []KernelImage, k mcheck.Kernel) (KernelImage, error) {
	var found *KernelImage
	for i := range imgs {
		if imgs[i].Kernel == k {
			found = &imgs[i]
		}
	}
	if found == nil {
		var have []string
		for _, i := range imgs {
			have = append(have, i.Release)
		}
		return KernelImage{}, fmt.Errorf("no unpacked %s kernel (have: %s)", k, strings.Join(have, ", "))
	}
	return *found, nil
}

var configKeys = []string{"CONFIG_MEMORY_HOTPLUG", "CONFIG_MEMORY_HOTREMOVE", "CONFIG_MHP_MEMMAP_ON_MEMORY",
	"CONFIG_ARCH_MHP_MEMMAP_ON_MEMORY_ENABLE", "CONFIG_ACPI_HOTPLUG_MEMORY", "CONFIG_ACPI_CONTAINER",
	"CONFIG_VIRTIO_MEM", "CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP", "CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP_DEFAULT_ON",
	"CONFIG_MEMORY_HOTPLUG_DEFAULT_ONLINE", "CONFIG_MHP_DEFAULT_ONLINE_TYPE_OFFLINE",
	"CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_AUTO", "CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_KERNEL",
	"CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_MOVABLE", "CONFIG_SPARSEMEM_VMEMMAP", "CONFIG_ZONE_DEVICE",
	"CONFIG_MIGRATION", "CONFIG_CMA", "CONFIG_CONTIG_ALLOC", "CONFIG_X86_5LEVEL", "CONFIG_PAGE_SIZE_4KB",
	"CONFIG_HUGETLBFS"}

// parseConfig reads the listed options from a kernel .config: "y"/"m"/value, "n" for
// "# CONFIG_X is not set", "(absent)" when the option does not exist in that release.
func parseConfig(data string, keys []string) orderedMap[string] {
	vals := map[string]string{}
	for _, l := range strings.Split(data, "\n") {
		l = strings.TrimSpace(l)
		if k, ok := strings.CutPrefix(l, "# "); ok && strings.HasSuffix(k, " is not set") {
			vals[strings.TrimSuffix(k, " is not set")] = "n"
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			vals[k] = strings.Trim(v, `"`)
		}
	}
	out := orderedMap[string]{}
	for _, k := range keys {
		v, ok := vals[k]
		if !ok {
			v = "(absent)"
		}
		out = append(out, kv[string]{k, v})
	}
	return out
}

// accelChoice is the result of the KVM probe, made once per run.
type accelChoice struct {
	Accel   string // kvm | tcg
	CPU     string
	Present bool
	Note    string
}

// Options control a recording run.
type Options struct {
	QEMU          string
	KernelDir     string
	OutDir        string
	LogDir        string
	Timeout       time.Duration // whole scenario
	BootTimeout   time.Duration
	PlugTimeout   time.Duration
	UnplugTimeout time.Duration
	Accel         string // auto | tcg | kvm
}

func round3(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
func round2(d time.Duration) float64 { return math.Round(d.Seconds()*100) / 100 }

// vm is one running QEMU with its QMP and agent connections.
type vm struct {
	cmd     *exec.Cmd
	done    chan error
	stderr  *bytes.Buffer
	qmp     *qmpClient
	agent   *agent
	tmp     string
	console string
	argv    []string
}

func (v *vm) kill() {
	if v.cmd != nil && v.cmd.Process != nil {
		select {
		case <-v.done:
		default:
			v.cmd.Process.Kill()
			select {
			case <-v.done:
			case <-time.After(5 * time.Second):
			}
		}
	}
	if v.qmp != nil {
		v.qmp.Close()
	}
	if v.agent != nil {
		v.agent.conn.Close()
	}
}

func (v *vm) stderrText() string {
	s := strings.TrimSpace(v.stderr.String())
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 300 {
		s = s[:300] + " ..."
	}
	return s
}

// startVM boots img with the agent initramfs and connects QMP and the agent.
func startVM(o *Options, img KernelImage, initrd, cmdline string, acc accelChoice, bootTimeout time.Duration) (*vm, error) {
	tmp, err := os.MkdirTemp("", "mcrec-")
	if err != nil {
		return nil, err
	}
	v := &vm{tmp: tmp, done: make(chan error, 1), stderr: &bytes.Buffer{}}
	v.console = filepath.Join(tmp, "console.log")
	agentSock := filepath.Join(tmp, "agent.sock")
	qmpSock := filepath.Join(tmp, "qmp.sock")
	ln, err := net.Listen("unix", agentSock)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	v.argv = []string{o.QEMU, "-machine", "pc,accel=" + acc.Accel, "-cpu", acc.CPU,
		"-m", "1G,slots=8,maxmem=16G", "-smp", "2",
		"-kernel", filepath.Join(img.Dir, "vmlinuz"), "-initrd", initrd, "-append", cmdline,
		"-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:" + v.console,
		"-chardev", "socket,id=agent,path=" + agentSock, "-serial", "chardev:agent",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off"}
	v.cmd = exec.Command(v.argv[0], v.argv[1:]...)
	v.cmd.Stderr = v.stderr
	v.cmd.Stdout = v.stderr
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", o.QEMU, err)
	}
	go func() { v.done <- v.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	type acc2 struct {
		c   net.Conn
		err error
	}
	ach := make(chan acc2, 1)
	go func() { c, err := ln.Accept(); ach <- acc2{c, err} }()
	select {
	case a := <-ach:
		if a.err != nil {
			v.kill()
			return nil, a.err
		}
		v.agent = newAgent(a.c)
	case err := <-v.done:
		v.done <- err
		return nil, fmt.Errorf("qemu exited: %v [%s]", err, v.stderrText())
	case <-time.After(time.Until(deadline)):
		v.kill()
		return nil, fmt.Errorf("qemu did not connect the agent chardev [%s]", v.stderrText())
	}
	if v.qmp, err = dialQMP(qmpSock, deadline); err != nil {
		v.kill()
		return nil, fmt.Errorf("%v [%s]", err, v.stderrText())
	}
	if err := v.agent.WaitReady(bootTimeout); err != nil {
		v.kill()
		return nil, fmt.Errorf("%v [qemu: %s]", err, v.stderrText())
	}
	return v, nil
}

// redactedArgv replaces host paths by placeholders so recordings do not depend on them.
func redactedArgv(argv []string, img KernelImage, v *vm, root string) []string {
	kd := img.Dir
	if rel, err := filepath.Rel(root, img.Dir); err == nil && !strings.HasPrefix(rel, "..") {
		kd = rel
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, img.Dir, "<"+kd+">")
		a = strings.ReplaceAll(a, filepath.Join(v.tmp, "console.log"), "<console.log>")
		a = strings.ReplaceAll(a, filepath.Join(v.tmp, "agent.sock"), "<agent.sock>")
		a = strings.ReplaceAll(a, filepath.Join(v.tmp, "qmp.sock"), "<qmp.sock>")
		out[i] = a
	}
	if len(out) > 0 {
		if p, err := exec.LookPath(out[0]); err == nil {
			out[0] = p
		}
	}
	return out
}

// probeKVM decides the accelerator: KVM only if /dev/kvm opens, answers KVM_GET_API_VERSION
// and a KVM guest actually boots to the agent; otherwise TCG with -cpu max.
func probeKVM(o *Options, img KernelImage, initrd string) accelChoice {
	tcg := accelChoice{Accel: "tcg", CPU: "max"}
	fi, err := os.Stat("/dev/kvm")
	if err != nil {
		tcg.Note = "KVM skipped: /dev/kvm absent"
		return tcg
	}
	tcg.Present = fi.Mode()&os.ModeDevice != 0
	switch o.Accel {
	case "tcg":
		tcg.Note = "TCG requested with --accel=tcg (/dev/kvm present, not probed)"
		return tcg
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		tcg.Note = fmt.Sprintf("KVM skipped: open /dev/kvm: %v", err)
		return tcg
	}
	const kvmGetAPIVersion = 0xAE00
	ver, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	f.Close()
	if errno != 0 || ver != 12 {
		tcg.Note = fmt.Sprintf("KVM skipped: KVM_GET_API_VERSION = %d (errno %v)", ver, errno)
		return tcg
	}
	kvm := accelChoice{Accel: "kvm", CPU: "host", Present: true}
	t0 := time.Now()
	v, err := startVM(o, img, initrd, "console=ttyS0 panic=-1 nokaslr rdinit=/init", kvm, 20*time.Second)
	if err != nil {
		tcg.Note = fmt.Sprintf("KVM skipped: probe at %s: /dev/kvm opens (API %d) but a KVM guest (-cpu host) did not reach the agent: %v",
			time.Now().UTC().Format(time.RFC3339), ver, err)
		return tcg
	}
	v.agent.Do("EXIT", 5*time.Second)
	v.kill()
	os.RemoveAll(v.tmp)
	kvm.Note = fmt.Sprintf("KVM probe at %s: guest booted to the agent in %.1fs", time.Now().UTC().Format(time.RFC3339), time.Since(t0).Seconds())
	if o.Accel == "auto" || o.Accel == "kvm" {
		return kvm
	}
	return tcg
}

// errText is the recorded form of a Go error.
func errText(err error) string { return err.Error() }

// rawJSON parses b for embedding (nil on error).
func rawJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

// flattenMemDev turns a query-memory-devices entry {"type":"dimm","data":{...}} into the
// prototype's flat form.
func flattenMemDev(e map[string]any) orderedMap[any] {
	out := orderedMap[any]{{"type", e["type"]}}
	data, _ := e["data"].(map[string]any)
	for _, k := range []string{"id", "addr", "size", "slot", "node", "memdev", "hotplugged"} {
		if v, ok := data[k]; ok {
			out = append(out, kv[any]{k, v})
		}
	}
	return out
}

func (v *vm) memoryDevices() ([]orderedMap[any], map[string]orderedMap[any], error) {
	r, err := v.qmp.Command("query-memory-devices", nil, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	var list []map[string]any
	d := json.NewDecoder(bytes.NewReader(r.Return))
	d.UseNumber()
	if err := d.Decode(&list); err != nil {
		return nil, nil, err
	}
	out := []orderedMap[any]{}
	byID := map[string]orderedMap[any]{}
	for _, e := range list {
		f := flattenMemDev(e)
		out = append(out, f)
		if id, ok := f.Get("id"); ok {
			if s, ok := id.(string); ok {
				byID[s] = f
			}
		}
	}
	return out, byID, nil
}

func (v *vm) blockSet(timeout time.Duration) (map[int]bool, error) {
	r, err := v.agent.Do("BLOCKS", timeout)
	if err != nil {
		return nil, err
	}
	s := map[int]bool{}
	for _, l := range r.Lines {
		if n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(l), "memory")); err == nil {
			s[n] = true
		}
	}
	return s, nil
}

func (v *vm) observe(timeout time.Duration) (*Observation, error) {
	r, err := v.agent.Do("OBSERVE", timeout)
	if err != nil {
		return nil, err
	}
	return buildObservation(r.Lines)
}

func ostInfo(ev qmpEvent) map[string]any {
	var d struct {
		Info map[string]any `json:"info"`
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	if dec.Decode(&d) != nil {
		return nil
	}
	return d.Info
}

func num(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return n
	case float64:
		return int64(x)
	}
	return -1
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stepOutcome is what the summary needs from a step.
type stepOutcome struct {
	ok      bool
	errno   *string
	ejected *bool
}

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

// doPlug hot-plugs one DIMM and waits for its memory blocks.
func (v *vm) doPlug(o *Options, a Action) (orderedMap[any], stepOutcome, error) {
	res := orderedMap[any]{}
	out := stepOutcome{}
	before, err := v.blockSet(30 * time.Second)
	if err != nil {
		return res, out, err
	}
	mark := v.qmp.EventMark()
	mem := "mem-" + a.DIMM
	r1, err := v.qmp.Command("object-add", map[string]any{"qom-type": "memory-backend-ram", "id": mem, "size": a.Size}, 30*time.Second)
	if err != nil {
		return res, out, err
	}
	res = append(res, kv[any]{"object_add", qmpRecord(r1)})
	r2, err := v.qmp.Command("device_add", map[string]any{"driver": "pc-dimm", "id": a.DIMM, "memdev": mem}, 30*time.Second)
	if err != nil {
		return res, out, err
	}
	res = append(res, kv[any]{"device_add", qmpRecord(r2)})
	var problems []string
	if !r1.OK || !r2.OK {
		problems = append(problems, "QMP refused the DIMM")
	}
	_, byID, err := v.memoryDevices()
	if err != nil {
		return res, out, err
	}
	dimm, have := byID[a.DIMM]
	if have {
		res = append(res, kv[any]{"dimm", dimm})
		if addr, ok := dimm.Get("addr"); ok && num(addr) != int64(a.First)*a.Size/int64(a.Nr) {
			problems = append(problems, fmt.Sprintf("QEMU placed the DIMM at %v, not at block %d (%d)", addr, a.First, int64(a.First)*a.Size/int64(a.Nr)))
		}
	}
	expected := a.ExpectedBlocks()
	var newBlocks []int
	if r2.OK {
		if ev, ok := v.qmp.WaitEvent(mark, o.PlugTimeout, func(ev qmpEvent) bool {
			i := ostInfo(ev)
			return ev.Event == "ACPI_DEVICE_OST" && i != nil && i["device"] == a.DIMM && num(i["source"]) == 1
		}); ok {
			res = append(res, kv[any]{"guest_ost", ostInfo(ev)})
		} else {
			res = append(res, kv[any]{"guest_ost", nil})
		}
		deadline := time.Now().Add(o.PlugTimeout)
		for {
			after, err := v.blockSet(30 * time.Second)
			if err != nil {
				return res, out, err
			}
			newBlocks = newBlocks[:0]
			for b := range after {
				if !before[b] {
					newBlocks = append(newBlocks, b)
				}
			}
			sort.Ints(newBlocks)
			if sameInts(newBlocks, expected) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if newBlocks == nil {
		newBlocks = []int{}
	}
	res = append(res, kv[any]{"new_blocks", newBlocks}, kv[any]{"expected_blocks", expected},
		kv[any]{"guest_added", len(newBlocks) > 0})
	if !sameInts(newBlocks, expected) {
		problems = append(problems, fmt.Sprintf("expected blocks %v (trace: %s), the guest added %v", expected, a.Op, newBlocks))
	}
	out.ok = len(problems) == 0
	res = append(res, kv[any]{"ok", out.ok})
	if len(problems) > 0 {
		res = append(res, kv[any]{"error", strings.Join(problems, "; ")})
	}
	res = append(res, kv[any]{"qmp_events", v.qmp.EventsSince(mark)})
	return res, out, nil
}

func qmpRecord(r qmpResult) orderedMap[any] {
	m := orderedMap[any]{{"ok", r.OK}}
	if r.OK {
		m = append(m, kv[any]{"return", rawJSON(r.Return)})
	} else {
		m = append(m, kv[any]{"error", rawJSON(r.Error)})
	}
	return m
}

// doState writes the block's state file in the guest.
func (v *vm) doState(a Action) (orderedMap[any], stepOutcome, error) {
	t0 := time.Now()
	r, err := v.agent.Do(fmt.Sprintf("STATE %d %s", a.Block, a.Value), 120*time.Second)
	el := time.Since(t0)
	if err != nil {
		return nil, stepOutcome{}, err
	}
	msg := ""
	for _, l := range r.Lines {
		if m, ok := strings.CutPrefix(l, "err|"); ok {
			msg = strings.TrimSpace(m)
		}
	}
	res := orderedMap[any]{{"block", fmt.Sprintf("memory%d", a.Block)}, {"value", a.Value}, {"t_elapsed_s", round3(el)}}
	out := stepOutcome{ok: r.RC == 0}
	res = append(res, kv[any]{"ok", out.ok})
	if !out.ok {
		e := errnoFromMessage(msg)
		if e == "" {
			e = "EUNKNOWN"
		}
		out.errno = strp(e)
		res = append(res, kv[any]{"errno", e}, kv[any]{"error", msg}, kv[any]{"rc", r.RC})
	}
	return res, out, nil
}

// doUnplug asks QEMU to unplug the DIMM and waits for the guest to eject it.
func (v *vm) doUnplug(o *Options, a Action) (orderedMap[any], stepOutcome, error) {
	res := orderedMap[any]{}
	mark := v.qmp.EventMark()
	r, err := v.qmp.Command("device_del", map[string]any{"id": a.DIMM}, 30*time.Second)
	if err != nil {
		return res, stepOutcome{}, err
	}
	res = append(res, kv[any]{"device_del", qmpRecord(r)})
	ejected := false
	resp := "device_del refused"
	if r.OK {
		// Stop at DEVICE_DELETED, or when the guest answers the eject request (_OST source 3)
		// with a final status: 0x84 means "ejection in progress", anything else but 0 a refusal.
		ev, got := v.qmp.WaitEvent(mark, o.UnplugTimeout, func(ev qmpEvent) bool {
			switch ev.Event {
			case "DEVICE_DELETED":
				var d struct {
					Device string `json:"device"`
				}
				json.Unmarshal(ev.Data, &d)
				return d.Device == a.DIMM
			case "ACPI_DEVICE_OST":
				i := ostInfo(ev)
				st := num(i["status"])
				return i != nil && i["device"] == a.DIMM && num(i["source"]) == 3 && st != 0 && st != 0x84
			}
			return false
		})
		ejected = got && ev.Event == "DEVICE_DELETED"
		switch {
		case ejected:
			resp = "ejected"
		case got:
			resp = fmt.Sprintf("refused: guest _OST eject status %d", num(ostInfo(ev)["status"]))
		default:
			resp = fmt.Sprintf("no DEVICE_DELETED within %v", o.UnplugTimeout)
		}
	}
	res = append(res, kv[any]{"guest_response", resp}, kv[any]{"ejected", ejected})
	if ejected {
		od, err := v.qmp.Command("object-del", map[string]any{"id": "mem-" + a.DIMM}, 30*time.Second)
		if err != nil {
			return res, stepOutcome{}, err
		}
		res = append(res, kv[any]{"object_del", qmpRecord(od)})
	}
	res = append(res, kv[any]{"ok", ejected})
	// give late events (the final _OST) a moment to arrive
	time.Sleep(300 * time.Millisecond)
	res = append(res, kv[any]{"qmp_events", v.qmp.EventsSince(mark)})
	list, _, err := v.memoryDevices()
	if err != nil {
		return res, stepOutcome{}, err
	}
	res = append(res, kv[any]{"dimms_after", list})
	if st, err := v.qmp.Command("query-acpi-ospm-status", nil, 10*time.Second); err == nil && st.OK {
		res = append(res, kv[any]{"acpi_ospm_status", rawJSON(st.Return)})
	}
	return res, stepOutcome{ok: ejected, ejected: boolp(ejected)}, nil
}

// qemuVersion asks QMP for the version: "7.2.22" and the package string.
func (v *vm) qemuVersion() (string, string) {
	r, err := v.qmp.Command("query-version", nil, 10*time.Second)
	if err != nil || !r.OK {
		return "", ""
	}
	var q struct {
		Qemu    struct{ Major, Minor, Micro int } `json:"qemu"`
		Package string                            `json:"package"`
	}
	json.Unmarshal(r.Return, &q)
	pkg := strings.Trim(strings.TrimSpace(q.Package), "()")
	return fmt.Sprintf("%d.%d.%d", q.Qemu.Major, q.Qemu.Minor, q.Qemu.Micro), pkg
}

// RecordScenario boots the scenario's kernel and runs it. The returned recording is complete
// (status "completed") or partial (status "failed", Error set); err is only for setup failures
// that leave nothing worth writing.
func RecordScenario(o *Options, s *Scenario, img KernelImage, initrd string, acc accelChoice, root string) (*Recording, error) {
	cmdline := "console=ttyS0 panic=-1 nokaslr rdinit=/init memhp_default_state=offline memory_hotplug.memmap_on_memory=" + s.BootParam()
	cfg, err := os.ReadFile(filepath.Join(img.Dir, "config"))
	if err != nil {
		return nil, err
	}
	rec := &Recording{
		Scenario: s.Name, Description: s.Description,
		Kernel:     KernelInfo{Short: img.Short, Release: img.Release, Package: img.Package, Config: parseConfig(string(cfg), configKeys)},
		BootAppend: cmdline,
		Qemu: QemuInfo{Machine: "pc", Accel: acc.Accel, KVM: KVMInfo{Enabled: acc.Accel == "kvm", Present: acc.Present},
			AccelNote: acc.Note, Memory: "-m 1G,slots=8,maxmem=16G -smp 2", Argv: []string{}},
		Status:  "failed",
		Summary: []SummaryRow{},
		Steps:   []Step{},
	}
	t0 := time.Now()
	v, err := startVM(o, img, initrd, cmdline, acc, o.BootTimeout)
	if err != nil {
		rec.Error = "boot: " + errText(err)
		rec.Timing = Timing{TotalS: round2(time.Since(t0)), RecordedAt: time.Now().UTC().Format(time.RFC3339)}
		return rec, nil
	}
	defer func() {
		v.kill()
		if o.LogDir != "" {
			os.MkdirAll(o.LogDir, 0o755)
			if b, err := os.ReadFile(v.console); err == nil {
				os.WriteFile(filepath.Join(o.LogDir, strings.TrimSuffix(s.OutName(), ".json")+".console.log"), b, 0o644)
			}
		}
		os.RemoveAll(v.tmp)
	}()
	watchdog := time.AfterFunc(o.Timeout, func() { v.cmd.Process.Kill() })
	defer watchdog.Stop()
	rec.Timing.BootS = round2(time.Since(t0))
	tReady := time.Now()
	rec.Qemu.Argv = redactedArgv(v.argv, img, v, root)
	rec.Qemu.Version, rec.Qemu.Package = v.qemuVersion()
	rec.GuestRelease = v.agent.Ready
	if info, err := v.agent.Do("INFO", 30*time.Second); err == nil {
		for _, l := range info.Lines {
			k, val, _ := strings.Cut(l, "|")
			switch k {
			case "release":
				rec.GuestRelease = val
			case "version":
				rec.Kernel.UnameV = val
			case "cmdline":
				rec.Kernel.Cmdline = strings.TrimSpace(val)
			}
		}
	}
	fail := func(err error) (*Recording, error) {
		rec.Error = errText(err)
		rec.Timing.TotalS = round2(time.Since(t0))
		rec.Timing.RecordedAt = time.Now().UTC().Format(time.RFC3339)
		return rec, nil
	}
	if rec.GuestRelease != img.Release {
		return fail(fmt.Errorf("guest runs %q, expected %q", rec.GuestRelease, img.Release))
	}
	obsTimeout := 60 * time.Second
	obs, err := v.observe(obsTimeout)
	if err != nil {
		return fail(fmt.Errorf("step 0 observe: %v", err))
	}
	bootBlocks := map[string]bool{}
	for _, b := range obs.Blocks {
		bootBlocks[b.Name] = true
	}
	if obs.BlockSizeBytes != s.BlockBytes {
		return fail(fmt.Errorf("guest block size %d, the trace's profile assumes %d", obs.BlockSizeBytes, s.BlockBytes))
	}
	st := Step{Step: 0, Op: "observe", Args: orderedMap[any]{}, Result: orderedMap[any]{{"ok", true}},
		Observation: obs, TRelS: round3(time.Since(tReady)), Note: strp("after boot")}
	rec.Steps = append(rec.Steps, st)
	rec.Summary = append(rec.Summary, summarize(st, true, nil, nil, bootBlocks))
	for i, a := range s.Actions {
		var res orderedMap[any]
		var out stepOutcome
		var args orderedMap[any]
		switch a.Kind {
		case ActPlug:
			args = orderedMap[any]{{"id", a.DIMM}, {"size", a.Size}}
			res, out, err = v.doPlug(o, a)
		case ActState:
			args = orderedMap[any]{{"dimm", a.DIMM}, {"block", a.Index}, {"value", a.Value}}
			res, out, err = v.doState(a)
		case ActUnplug:
			args = orderedMap[any]{{"id", a.DIMM}}
			res, out, err = v.doUnplug(o, a)
		}
		if err != nil {
			return fail(fmt.Errorf("step %d (%s, trace line %d): %v", i+1, a.Op, a.Line, err))
		}
		obs, err := v.observe(obsTimeout)
		if err != nil {
			return fail(fmt.Errorf("step %d (%s) observe: %v", i+1, a.Op, err))
		}
		st := Step{Step: i + 1, Op: string(a.Kind), Args: args, Result: res, Observation: obs,
			TRelS: round3(time.Since(tReady)), Note: strp(fmt.Sprintf("trace line %d: %s", a.Line, a.Op))}
		rec.Steps = append(rec.Steps, st)
		rec.Summary = append(rec.Summary, summarize(st, out.ok, out.errno, out.ejected, bootBlocks))
		if a.Kind == ActPlug && !out.ok {
			if e, ok := res.Get("error"); ok {
				return fail(fmt.Errorf("step %d (%s): %v", i+1, a.Op, e))
			}
		}
	}
	v.agent.Do("EXIT", 10*time.Second)
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
	}
	rec.Status = "completed"
	rec.Timing.TotalS = round2(time.Since(t0))
	rec.Timing.RecordedAt = time.Now().UTC().Format(time.RFC3339)
	return rec, nil
}

// writeRecording writes rec as indented JSON.
func writeRecording(path string, rec *Recording) error {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return err
	}
	w.Flush()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
