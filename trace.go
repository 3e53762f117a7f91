package mcheck

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// TraceMagic is the first line of every trace file.
const TraceMagic = "# mcheck trace v1"

// Trace is a replayable op sequence with the configuration it runs under.
//
//	# mcheck trace v1
//	# profile: tiny-x86
//	# kernel: 6.8
//	# memmap_on_memory: force
//	# expect: violation INV-8
//	add_memory block=1 nr=1 memmap_on_memory=1
//
// Header lines are `# key: value`; other `#` lines and blank lines are comments. Keys: profile
// (required), kernel, memmap_on_memory, blocks, hvo, zone_device, inject (comma-separated impl
// fault switches, or -), expect (pass | violation ID | divergence).
type Trace struct {
	Profile   string
	Overrides Overrides
	Inject    []string
	Expect    string // "" (unspecified), "pass", "violation INV-n", "divergence"
	Comments  []string
	Ops       []Op
	Lines     []int // source line of each op (1-based), when parsed
}

// ResolveProfile looks up the named profile and applies the header's overrides.
func (t *Trace) ResolveProfile() (Profile, error) {
	p, err := LookupProfile(t.Profile)
	if err != nil {
		return Profile{}, err
	}
	return p.WithOverrides(t.Overrides)
}

// ParseTrace reads a trace; name labels errors ("file:line: ...").
func ParseTrace(r io.Reader, name string) (*Trace, error) {
	t := &Trace{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	magic := false
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		errf := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, a...))
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if line == TraceMagic && !magic && len(t.Ops) == 0 && len(t.Comments) == 0 && t.Profile == "" {
				magic = true // the first line; later copies are comments
				continue
			}
			body := strings.TrimSpace(strings.TrimPrefix(line, "#"))
			k, v, ok := strings.Cut(body, ":")
			k = strings.TrimSpace(k)
			v = strings.TrimSpace(v)
			if ok && isHeaderKey(k) {
				if err := t.setHeader(k, v); err != nil {
					return nil, errf("%v", err)
				}
			} else {
				t.Comments = append(t.Comments, body)
			}
			continue
		}
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		op, err := ParseOp(line)
		if err != nil {
			return nil, errf("%v", err)
		}
		t.Ops = append(t.Ops, op)
		t.Lines = append(t.Lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if !magic {
		return nil, fmt.Errorf("%s: not an mcheck trace (first line must be %q)", name, TraceMagic)
	}
	if t.Profile == "" {
		return nil, fmt.Errorf("%s: header has no `# profile: NAME` line", name)
	}
	if _, err := t.ResolveProfile(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return t, nil
}

// ReadTraceFile parses the trace at path.
func ReadTraceFile(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseTrace(f, path)
}

var headerKeys = []string{"profile", "kernel", "memmap_on_memory", "blocks", "hvo", "zone_device", "inject", "expect"}

func isHeaderKey(k string) bool { return contains(headerKeys, k) }

func parseBool(k, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "1", "y", "yes", "true":
		return true, nil
	case "off", "0", "n", "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("%s: %q is not on/off", k, v)
}

func (t *Trace) setHeader(k, v string) error {
	switch k {
	case "profile":
		t.Profile = v
	case "kernel":
		kv, err := ParseKernel(v)
		if err != nil {
			return err
		}
		t.Overrides.Kernel = &kv
	case "memmap_on_memory":
		m, err := ParseMode(v)
		if err != nil {
			return err
		}
		t.Overrides.Mode = &m
	case "blocks":
		b, err := strconv.Atoi(v)
		if err != nil || b < 1 {
			return fmt.Errorf("blocks: %q is not a positive number", v)
		}
		t.Overrides.Blocks = &b
	case "hvo", "zone_device":
		b, err := parseBool(k, v)
		if err != nil {
			return err
		}
		if k == "hvo" {
			t.Overrides.HVO = &b
		} else {
			t.Overrides.ZoneDevice = &b
		}
	case "inject":
		t.Inject = nil
		if v != "-" && v != "" {
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					t.Inject = append(t.Inject, s)
				}
			}
		}
	case "expect":
		if v != "pass" && v != "divergence" && !strings.HasPrefix(v, "violation ") {
			return fmt.Errorf("expect: %q: want pass, divergence or violation INV-n", v)
		}
		t.Expect = v
	}
	return nil
}

// Format writes the trace in its canonical form (header keys in a fixed order, then the ops).
func (t *Trace) Format(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, TraceMagic)
	fmt.Fprintf(bw, "# profile: %s\n", t.Profile)
	o := t.Overrides
	if o.Kernel != nil {
		fmt.Fprintf(bw, "# kernel: %s\n", o.Kernel)
	}
	if o.Mode != nil {
		fmt.Fprintf(bw, "# memmap_on_memory: %s\n", o.Mode)
	}
	if o.Blocks != nil {
		fmt.Fprintf(bw, "# blocks: %d\n", *o.Blocks)
	}
	onoff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	if o.HVO != nil {
		fmt.Fprintf(bw, "# hvo: %s\n", onoff(*o.HVO))
	}
	if o.ZoneDevice != nil {
		fmt.Fprintf(bw, "# zone_device: %s\n", onoff(*o.ZoneDevice))
	}
	inj := "-"
	if len(t.Inject) > 0 {
		inj = strings.Join(t.Inject, ",")
	}
	fmt.Fprintf(bw, "# inject: %s\n", inj)
	if t.Expect != "" {
		fmt.Fprintf(bw, "# expect: %s\n", t.Expect)
	}
	for _, c := range t.Comments {
		fmt.Fprintf(bw, "# %s\n", c)
	}
	for _, op := range t.Ops {
		fmt.Fprintln(bw, op.String())
	}
	return bw.Flush()
}

// String is the formatted trace.
func (t *Trace) String() string {
	var b strings.Builder
	t.Format(&b)
	return b.String()
}

// FullOverrides returns overrides that pin every knob of p, so a trace written with them replays
// the same configuration even if a named profile's defaults change later.
func FullOverrides(p Profile) Overrides {
	k, m, b, h, z := p.Kernel, p.Mode, p.HotplugBlocks, p.HVO, p.ZoneDevice
	return Overrides{Kernel: &k, Mode: &m, Blocks: &b, HVO: &h, ZoneDevice: &z}
}
