// Package record boots Debian kernels under QEMU, drives memory hotplug (pc-dimm plug/unplug via
// QMP, memory block online/offline via sysfs in the guest) as scripted by mcheck traces, and
// writes what the kernel reported after every step as one JSON file per scenario and kernel.
// See record/README.md.
package record

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcheck/mcheck"
)

// Main is the mcheck-record command.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcheck-record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := Options{}
	var all, list bool
	var kernels, scenDir string
	fs.StringVar(&o.KernelDir, "kernel-dir", "build/kernels", "unpacked kernels (scripts/setup-conformance.sh)")
	fs.StringVar(&o.OutDir, "out", "corpus/kernel", "where to write <scenario>__k<kernel>.json")
	fs.StringVar(&o.LogDir, "log-dir", "build/record-logs", "where to keep guest console logs (\"\" = none)")
	fs.StringVar(&o.QEMU, "qemu", "qemu-system-x86_64", "QEMU binary")
	fs.StringVar(&o.Accel, "accel", "auto", "auto (probe KVM, fall back to TCG) | tcg | kvm")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "limit per scenario (QEMU is killed after it)")
	fs.DurationVar(&o.BootTimeout, "boot-timeout", 120*time.Second, "limit for the guest agent to come up")
	fs.DurationVar(&o.PlugTimeout, "plug-timeout", 30*time.Second, "limit for a plugged DIMM's blocks to appear")
	fs.DurationVar(&o.UnplugTimeout, "unplug-timeout", 90*time.Second, "limit for DEVICE_DELETED (or the guest's _OST refusal) after device_del")
	fs.BoolVar(&all, "all", false, "record every scenario in --scenarios")
	fs.BoolVar(&list, "list", false, "list the scenarios and their actions, run nothing")
	fs.StringVar(&scenDir, "scenarios", "corpus/kernel/scenarios", "scenario directory for --all")
	fs.StringVar(&kernels, "kernels", "", "only scenarios for these kernels, e.g. 6.1,6.12 (default: all)")
	var files multiFlag
	fs.Var(&files, "scenario", "a scenario trace file (repeatable; also positional arguments)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mcheck-record [flags] (--all | --scenario FILE ... | FILE ...)\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	files = append(files, fs.Args()...)
	if all {
		m, err := ScenarioFiles(scenDir)
		if err != nil {
			fmt.Fprintln(stderr, "mcheck-record:", err)
			return 2
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}
	want := map[string]bool{}
	for _, k := range strings.Split(kernels, ",") {
		if k = strings.TrimSpace(k); k != "" {
			kv, err := mcheck.ParseKernel(k)
			if err != nil {
				fmt.Fprintln(stderr, "mcheck-record:", err)
				return 2
			}
			want[kv.String()] = true
		}
	}
	var scens []*Scenario
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		s, err := LoadScenario(f)
		if err != nil {
			fmt.Fprintln(stderr, "mcheck-record:", err)
			return 2
		}
		if len(want) > 0 && !want[s.Kernel.String()] {
			continue
		}
		scens = append(scens, s)
	}
	if list {
		for _, s := range scens {
			fmt.Fprintf(stdout, "%s (kernel %s, memmap_on_memory=%s): %s\n", s.OutName(), s.Kernel, s.BootParam(), s.Description)
			for _, a := range s.Actions {
				fmt.Fprintf(stdout, "  %-7s %-4s %s\n", a.Kind, a.DIMM, a.Op)
			}
		}
		return 0
	}
	imgs, err := findKernels(o.KernelDir)
	if missingKernels(imgs, scens) {
		// A fresh machine: fetch and unpack the kernels (and QEMU) first, so that one command
		// records. Only for the default layout, where the script puts them.
		if setup := "scripts/setup-conformance.sh"; o.KernelDir == "build/kernels" && fileExists(setup) {
			fmt.Fprintf(stderr, "mcheck-record: kernels missing in %s: running %s\n", o.KernelDir, setup)
			cmd := exec.Command("sh", setup)
			cmd.Stdout, cmd.Stderr = stderr, stderr
			if rerr := cmd.Run(); rerr != nil {
				fmt.Fprintf(stderr, "mcheck-record: %s: %v\n", setup, rerr)
				return 2
			}
			imgs, err = findKernels(o.KernelDir)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "mcheck-record:", err)
		return 2
	}
	// resolve every kernel before booting anything
	byScen := map[*Scenario]KernelImage{}
	for _, s := range scens {
		img, err := pickKernel(imgs, s.Kernel)
		if err != nil {
			fmt.Fprintf(stderr, "mcheck-record: %s: %v\n", s.Path, err)
			return 2
		}
		byScen[s] = img
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "mcheck-record:", err)
		return 1
	}
	root, _ := os.Getwd()
	initrds := map[string]string{}
	var acc *accelChoice
	failed := 0
	tAll := time.Now()
	for _, s := range scens {
		img := byScen[s]
		initrd, ok := initrds[img.Dir]
		if !ok {
			initrd, err = writeInitramfs(img.Dir)
			if err != nil {
				fmt.Fprintln(stderr, "mcheck-record: initramfs:", err)
				return 1
			}
			initrds[img.Dir] = initrd
		}
		if acc == nil {
			a := probeKVM(&o, img, initrd)
			acc = &a
			fmt.Fprintf(stdout, "accelerator: %s (%s)\n", acc.Accel, acc.Note)
		}
		t0 := time.Now()
		rec, err := RecordScenario(&o, s, img, initrd, *acc, root)
		if err != nil {
			fmt.Fprintf(stderr, "mcheck-record: %s: %v\n", s.OutName(), err)
			failed++
			continue
		}
		out := filepath.Join(o.OutDir, s.OutName())
		if err := writeRecording(out, rec); err != nil {
			fmt.Fprintln(stderr, "mcheck-record:", err)
			return 1
		}
		line := fmt.Sprintf("%-45s %-9s %3d steps  boot %5.1fs  total %5.1fs", s.OutName(), rec.Status, len(rec.Steps), rec.Timing.BootS, time.Since(t0).Seconds())
		if rec.Status != "completed" {
			failed++
			line += "  ERROR: " + rec.Error
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "%d scenario(s), %d failed, %.0fs\n", len(scens), failed, time.Since(tAll).Seconds())
	if failed > 0 {
		return 1
	}
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// missingKernels reports whether some scenario's kernel is not unpacked.
func missingKernels(imgs []KernelImage, scens []*Scenario) bool {
	for _, s := range scens {
		if _, err := pickKernel(imgs, s.Kernel); err != nil {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
