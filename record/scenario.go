package record

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mcheck/mcheck"
)

// Scenario is one trace file to record: which kernel to boot, with which
// memory_hotplug.memmap_on_memory= value, and the QEMU/sysfs actions its ops map to.
type Scenario struct {
	Name        string // file name without "__k<kernel>.trace"
	Description string // the trace's "# description: ..." comment
	Path        string
	Kernel      mcheck.Kernel
	Mode        mcheck.Mode
	BlockBytes  int64
	Actions     []Action
}

// OutName is the recording's file name: <scenario>__k<kernel>.json.
func (s *Scenario) OutName() string { return s.Name + "__k" + s.Kernel.String() + ".json" }

// BootParam is the memory_hotplug.memmap_on_memory= value for the scenario's mode.
func (s *Scenario) BootParam() string { return modeBootParam(s.Mode) }

func modeBootParam(m mcheck.Mode) string {
	switch m {
	case mcheck.ModeOff:
		return "0"
	case mcheck.ModeForce:
		return "force"
	}
	return "1"
}

// ActionKind is what the recorder does for one trace op.
type ActionKind string

const (
	ActPlug   ActionKind = "plug"   // QMP object-add + device_add pc-dimm
	ActState  ActionKind = "state"  // write memoryN/state in the guest
	ActUnplug ActionKind = "unplug" // QMP device_del
)

// Action is one step of a recording.
type Action struct {
	Kind   ActionKind
	DIMM   string // QEMU device id: d0, d1, ...
	Size   int64  // plug: bytes
	First  int    // plug/unplug: the DIMM's first memory block (from the trace)
	Nr     int    // plug/unplug: the DIMM's blocks
	Block  int    // state: global memory block id
	Index  int    // state: block index within the DIMM
	Value  string // state: online | online_kernel | online_movable | offline
	Op     string // the trace op, as printed
	Line   int    // its line in the trace file
	MMOMOp bool   // add_memory's memmap_on_memory= (informational: the ACPI driver decides)
}

// ExpectedBlocks are the memory block ids a plug should create.
func (a Action) ExpectedBlocks() []int {
	out := make([]int, a.Nr)
	for i := range out {
		out[i] = a.First + i
	}
	return out
}

type dimmInfo struct {
	id        string
	first, nr int
}

// onlineValue is what an online op writes to memoryN/state.
func onlineValue(t mcheck.OnlineType) string {
	switch t {
	case mcheck.OnlineKernel:
		return "online_kernel"
	case mcheck.OnlineMovable:
		return "online_movable"
	}
	return "online"
}

// MapTrace turns a parsed trace into recorder actions. Supported ops: add_memory (one DIMM of
// nr blocks), online, offline, remove_memory (device_del of the DIMM plugged at block with nr
// blocks). Anything else is an error: QEMU cannot drive it.
func MapTrace(t *mcheck.Trace, name string) (*Scenario, error) {
	p, err := t.ResolveProfile()
	if err != nil {
		return nil, err
	}
	if p.Arch != "x86_64" || p.Scaled {
		return nil, fmt.Errorf("%s: profile %s: the recorder boots x86_64 only (use x86_64-4k)", name, p.Name)
	}
	if t.Overrides.Kernel == nil {
		return nil, fmt.Errorf("%s: header needs `# kernel: 6.1` or `# kernel: 6.12`", name)
	}
	if t.Overrides.Mode == nil {
		return nil, fmt.Errorf("%s: header needs `# memmap_on_memory: on|off|force`", name)
	}
	s := &Scenario{Name: name, Kernel: *t.Overrides.Kernel, Mode: *t.Overrides.Mode, BlockBytes: p.BlockBytes()}
	for _, c := range t.Comments {
		if d, ok := strings.CutPrefix(c, "description:"); ok {
			s.Description = strings.TrimSpace(d)
		}
	}
	var dimms []dimmInfo // plug order; never removed (a failed eject leaves the DIMM in place)
	find := func(block int) (dimmInfo, bool) {
		for i := len(dimms) - 1; i >= 0; i-- {
			d := dimms[i]
			if block >= d.first && block < d.first+d.nr {
				return d, true
			}
		}
		return dimmInfo{}, false
	}
	gone := map[string]bool{} // DIMMs whose removal has been requested
	for i, op := range t.Ops {
		line := 0
		if i < len(t.Lines) {
			line = t.Lines[i]
		}
		errf := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s: %s", name, line, op, fmt.Sprintf(format, a...))
		}
		a := Action{Op: op.String(), Line: line}
		switch op.Kind {
		case mcheck.OpAddMemory:
			if op.Nr < 1 {
				return nil, errf("nr must be at least 1")
			}
			if op.Block < p.HotplugStart || op.Block+op.Nr > p.HotplugStart+p.HotplugBlocks {
				return nil, errf("blocks [%d,%d) are outside the hot-pluggable range [%d,%d)", op.Block, op.Block+op.Nr, p.HotplugStart, p.HotplugStart+p.HotplugBlocks)
			}
			for b := op.Block; b < op.Block+op.Nr; b++ {
				if d, ok := find(b); ok && !gone[d.id] {
					return nil, errf("block %d already belongs to DIMM %s", b, d.id)
				}
			}
			d := dimmInfo{id: fmt.Sprintf("d%d", len(dimms)), first: op.Block, nr: op.Nr}
			dimms = append(dimms, d)
			a.Kind, a.DIMM, a.First, a.Nr, a.Size, a.MMOMOp = ActPlug, d.id, d.first, d.nr, int64(op.Nr)*s.BlockBytes, op.MMOM
		case mcheck.OpOnline, mcheck.OpOffline:
			d, ok := find(op.Block)
			if !ok {
				return nil, errf("block %d is not on any plugged DIMM", op.Block)
			}
			a.Kind, a.DIMM, a.Block, a.Index = ActState, d.id, op.Block, op.Block-d.first
			a.First, a.Nr = d.first, d.nr
			if op.Kind == mcheck.OpOnline {
				a.Value = onlineValue(op.Type)
			} else {
				a.Value = "offline"
			}
		case mcheck.OpRemoveMemory:
			d, ok := find(op.Block)
			if !ok || d.first != op.Block || d.nr != op.Nr {
				return nil, errf("no DIMM was plugged with block=%d nr=%d (QEMU unplugs whole DIMMs)", op.Block, op.Nr)
			}
			gone[d.id] = true
			a.Kind, a.DIMM, a.First, a.Nr = ActUnplug, d.id, d.first, d.nr
		default:
			return nil, errf("op %s cannot be driven through QEMU/sysfs (recorder supports add_memory, online, offline, remove_memory)", op.Kind)
		}
		s.Actions = append(s.Actions, a)
	}
	return s, nil
}

// LoadScenario reads and maps one trace file named <scenario>__k<kernel>.trace (or
// <scenario>.trace).
func LoadScenario(path string) (*Scenario, error) {
	t, err := mcheck.ReadTraceFile(path)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(filepath.Base(path), ".trace")
	name := base
	if i := strings.LastIndex(base, "__k"); i > 0 {
		name = base[:i]
		if t.Overrides.Kernel != nil && base[i+3:] != t.Overrides.Kernel.String() {
			return nil, fmt.Errorf("%s: file name says kernel %s, header says %s", path, base[i+3:], t.Overrides.Kernel)
		}
	}
	s, err := MapTrace(t, name)
	if err != nil {
		return nil, err
	}
	s.Path = path
	return s, nil
}

// ScenarioFiles lists dir/*.trace, sorted.
func ScenarioFiles(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.trace"))
	if err != nil {
		return nil, err
	}
	sort.Strings(m)
	if len(m) == 0 {
		return nil, fmt.Errorf("no *.trace files in %s", dir)
	}
	return m, nil
}
