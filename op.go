package mcheck

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// OpKind names one operation of the alphabet.
type OpKind uint8

const (
	OpAddMemory OpKind = iota
	OpRemoveMemory
	OpOnline
	OpOffline
	OpPin
	OpUnpin
	OpHugetlbAlloc
	OpHugetlbOptimize
	OpHugetlbFree
	OpMemremap
	OpMemunmap
	OpAllocContig
	OpFailNext
	OpPfnValid
	OpPfnToOnlinePage
	NrOpKinds
)

// OnlineType is what is written to a memory block's state file.
type OnlineType uint8

const (
	OnlineAuto    OnlineType = iota // "online": zone_for_pfn_range's default
	OnlineKernel                    // "online_kernel"
	OnlineMovable                   // "online_movable"
)

var onlineTypeNames = [...]string{"auto", "kernel", "movable"}

func (t OnlineType) String() string { return onlineTypeNames[t] }

// FaultKind is an injection point for fail_next.
type FaultKind uint8

const (
	FaultNone        FaultKind = iota
	FaultUsage                 // the next mem_section_usage allocation (section_activate)
	FaultVmemmap               // the next vmemmap data frame allocation (altmap or buddy)
	FaultBlockDevice           // the next memory block device registration
	FaultNotifier              // the next MEM_GOING_ONLINE / MEM_GOING_OFFLINE notifier vetoes
	NrFaultKinds
)

var faultNames = [...]string{"none", "usage", "vmemmap", "block_device", "notifier"}

func (f FaultKind) String() string { return faultNames[f] }

// Op is one operation: a value, printable with String and read back with ParseOp.
// Which fields matter depends on Kind (see Spec).
type Op struct {
	Kind       OpKind
	Block      int        // memory block id (add/remove: first block)
	Nr         int        // add/remove: blocks; memremap: subsections; alloc_contig: pages
	MMOM       bool       // add_memory: pass MHP_MEMMAP_ON_MEMORY
	Type       OnlineType // online
	Subsection int        // memremap/memunmap: global subsection index (pfn / PAGES_PER_SUBSECTION)
	Reserve    int        // memremap: altmap reserve (pages)
	Free       int        // memremap: altmap free (pages); 0 = no driver altmap
	Pfn        int        // queries, alloc_contig
	Fault      FaultKind  // fail_next
}

// OpSpec documents one op kind: its trace name, keys and one line of help.
type OpSpec struct {
	Name  string
	Keys  []string
	Query bool // answers a question, never changes state
	Help  string
}

// Specs is the alphabet, indexed by OpKind.
var Specs = [NrOpKinds]OpSpec{
	OpAddMemory:       {"add_memory", []string{"block", "nr", "memmap_on_memory"}, false, "hot-add nr memory blocks from block (add_memory_resource), with MHP_MEMMAP_ON_MEMORY if memmap_on_memory=1"},
	OpRemoveMemory:    {"remove_memory", []string{"block", "nr"}, false, "hot-remove nr offline blocks from block (remove_memory -> try_remove_memory)"},
	OpOnline:          {"online", []string{"block", "type"}, false, "write online|online_kernel|online_movable (type=auto|kernel|movable) to the block's state (memory_block_online)"},
	OpOffline:         {"offline", []string{"block"}, false, "write offline to the block's state (memory_block_offline)"},
	OpPin:             {"pin", []string{"block"}, false, "take an unmovable allocation in an online kernel-zone block (its lowest free page), so offline fails with EBUSY"},
	OpUnpin:           {"unpin", []string{"block"}, false, "free the block's lowest pinned page"},
	OpHugetlbAlloc:    {"hugetlb_alloc", []string{"block"}, false, "allocate a PMD-sized hugetlb folio from the block's free pages (lowest aligned fit)"},
	OpHugetlbOptimize: {"hugetlb_vmemmap_optimize", []string{"block"}, false, "HVO the block's lowest unoptimized hugetlb folio (skipped for self-hosted vmemmap, 6.0+)"},
	OpHugetlbFree:     {"hugetlb_free", []string{"block"}, false, "free the block's lowest hugetlb folio (restoring its vmemmap if optimized)"},
	OpMemremap:        {"memremap", []string{"subsection", "nr", "reserve", "free"}, false, "memremap_pages a ZONE_DEVICE range of nr subsections, with a driver altmap when free>0"},
	OpMemunmap:        {"memunmap", []string{"subsection"}, false, "memunmap_pages the ZONE_DEVICE range starting at subsection"},
	OpAllocContig:     {"alloc_contig", []string{"pfn", "nr"}, false, "alloc_contig_range [pfn, pfn+nr) and free it again: isolation must not touch self-hosted pages"},
	OpFailNext:        {"fail_next", []string{"kind"}, false, "arm a one-shot fault: usage | vmemmap | block_device | notifier"},
	OpPfnValid:        {"pfn_valid", []string{"pfn"}, true, "query pfn_valid(pfn); the answer is compared"},
	OpPfnToOnlinePage: {"pfn_to_online_page", []string{"pfn"}, true, "query pfn_to_online_page(pfn) != NULL; the answer is compared"},
}

var opByName = func() map[string]OpKind {
	m := map[string]OpKind{}
	for k, s := range Specs {
		m[s.Name] = OpKind(k)
	}
	return m
}()

func (k OpKind) String() string {
	if k < NrOpKinds {
		return Specs[k].Name
	}
	return "op(" + strconv.Itoa(int(k)) + ")"
}

// ParseOpKind reads an op name.
func ParseOpKind(s string) (OpKind, error) {
	k, ok := opByName[s]
	if !ok {
		return 0, fmt.Errorf("unknown op %q (known: %s)", s, strings.Join(OpNames(), ", "))
	}
	return k, nil
}

// OpNames lists the alphabet's names.
func OpNames() []string {
	var n []string
	for _, s := range Specs {
		n = append(n, s.Name)
	}
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// value returns the field behind a key, as printed.
func (o Op) value(key string) string {
	switch key {
	case "block":
		return strconv.Itoa(o.Block)
	case "nr":
		return strconv.Itoa(o.Nr)
	case "memmap_on_memory":
		return strconv.Itoa(b2i(o.MMOM))
	case "type":
		return o.Type.String()
	case "subsection":
		return strconv.Itoa(o.Subsection)
	case "reserve":
		return strconv.Itoa(o.Reserve)
	case "free":
		return strconv.Itoa(o.Free)
	case "pfn":
		return "0x" + strconv.FormatInt(int64(o.Pfn), 16)
	case "kind":
		return o.Fault.String()
	}
	panic("unknown key " + key)
}

// String prints the trace form: `name key=value ...`.
func (o Op) String() string {
	if o.Kind >= NrOpKinds {
		return o.Kind.String()
	}
	var b strings.Builder
	b.WriteString(Specs[o.Kind].Name)
	for _, k := range Specs[o.Kind].Keys {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(o.value(k))
	}
	return b.String()
}

// ParseOp reads one trace line (without comment). Every key of the op is required, unknown
// keys are errors, so that a trace means exactly one sequence.
func ParseOp(line string) (Op, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return Op{}, fmt.Errorf("empty op")
	}
	kind, err := ParseOpKind(f[0])
	if err != nil {
		return Op{}, err
	}
	o := Op{Kind: kind}
	spec := Specs[kind]
	seen := map[string]bool{}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Op{}, fmt.Errorf("%s: %q is not key=value", spec.Name, kv)
		}
		if !contains(spec.Keys, k) {
			return Op{}, fmt.Errorf("%s: unknown key %q (keys: %s)", spec.Name, k, strings.Join(spec.Keys, ", "))
		}
		if seen[k] {
			return Op{}, fmt.Errorf("%s: key %q given twice", spec.Name, k)
		}
		seen[k] = true
		if err := o.set(k, v); err != nil {
			return Op{}, fmt.Errorf("%s: %v", spec.Name, err)
		}
	}
	var missing []string
	for _, k := range spec.Keys {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Op{}, fmt.Errorf("%s: missing %s", spec.Name, strings.Join(missing, ", "))
	}
	return o, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

const maxParam = 1 << 30

func (o *Op) set(key, v string) error {
	num := func() (int, error) {
		n, err := strconv.ParseInt(v, 0, 64)
		if err != nil || n < 0 || n > maxParam {
			return 0, fmt.Errorf("%s=%q: want a number in [0, 2^30]", key, v)
		}
		return int(n), nil
	}
	var err error
	switch key {
	case "block":
		o.Block, err = num()
	case "nr":
		o.Nr, err = num()
	case "subsection":
		o.Subsection, err = num()
	case "reserve":
		o.Reserve, err = num()
	case "free":
		o.Free, err = num()
	case "pfn":
		o.Pfn, err = num()
	case "memmap_on_memory":
		switch v {
		case "0":
			o.MMOM = false
		case "1":
			o.MMOM = true
		default:
			err = fmt.Errorf("memmap_on_memory=%q: want 0 or 1", v)
		}
	case "type":
		i := indexOf(onlineTypeNames[:], v)
		if i < 0 {
			err = fmt.Errorf("type=%q: want auto, kernel or movable", v)
		}
		o.Type = OnlineType(i)
	case "kind":
		i := indexOf(faultNames[1:], v)
		if i < 0 {
			err = fmt.Errorf("kind=%q: want %s", v, strings.Join(faultNames[1:], ", "))
		}
		o.Fault = FaultKind(i + 1)
	}
	return err
}

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return -1
}

// ParseOpKinds reads a comma-separated list of op names (for --ops).
func ParseOpKinds(s string) ([]OpKind, error) {
	var out []OpKind
	seen := map[OpKind]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		k, err := ParseOpKind(n)
		if err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty op list")
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
