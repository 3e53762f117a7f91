package record

import (
	"fmt"
	"sort"
	"strings"
)

// The recording format: the same keys and types as the prototype recordings in
// /work/shared/conformance (see record/README.md).

// Recording is one scenario run on one kernel.
type Recording struct {
	Scenario     string       `json:"scenario"`
	Description  string       `json:"description"`
	Kernel       KernelInfo   `json:"kernel"`
	BootAppend   string       `json:"boot_append"`
	Qemu         QemuInfo     `json:"qemu"`
	GuestRelease string       `json:"guest_release"`
	Status       string       `json:"status"`
	Error        string       `json:"error,omitempty"`
	Timing       Timing       `json:"timing"`
	Summary      []SummaryRow `json:"summary"`
	Steps        []Step       `json:"steps"`
}

// KernelInfo describes the booted image.
type KernelInfo struct {
	Short   string             `json:"short"`
	Release string             `json:"release"`
	Package string             `json:"package"`
	Config  orderedMap[string] `json:"config"`
	UnameV  string             `json:"uname_v"`
	Cmdline string             `json:"cmdline"`
}

// QemuInfo describes the emulator and how it was started.
type QemuInfo struct {
	Version   string   `json:"version"`
	Package   string   `json:"package"`
	Machine   string   `json:"machine"`
	Accel     string   `json:"accel"`
	KVM       KVMInfo  `json:"kvm"`
	AccelNote string   `json:"accel_note"`
	Memory    string   `json:"memory"`
	Argv      []string `json:"argv"`
}

// KVMInfo says whether /dev/kvm exists and whether it was used.
type KVMInfo struct {
	Enabled bool `json:"enabled"`
	Present bool `json:"present"`
}

// Timing of the run, in seconds.
type Timing struct {
	BootS      float64 `json:"boot_s"`
	TotalS     float64 `json:"total_s"`
	RecordedAt string  `json:"recorded_at"`
}

// Step is the full record of one step.
type Step struct {
	Step        int             `json:"step"`
	Op          string          `json:"op"`
	Args        orderedMap[any] `json:"args"`
	Result      orderedMap[any] `json:"result"`
	Observation *Observation    `json:"observation"`
	TRelS       float64         `json:"t_rel_s"`
	Note        *string         `json:"note"`
}

// Observation is what the guest reported after a step.
type Observation struct {
	BlockSizeBytes      int64              `json:"block_size_bytes"`
	AutoOnlineBlocks    string             `json:"auto_online_blocks"`
	MemoryHotplugParams orderedMap[string] `json:"memory_hotplug_params"`
	Blocks              []Block            `json:"blocks"`
	Zones               []Zone             `json:"zones"`
	Meminfo             orderedMap[int64]  `json:"meminfo"`
	VmstatMemmap        orderedMap[int64]  `json:"vmstat_memmap"`
	Iomem               []string           `json:"iomem"`
	Hugepages           orderedMap[string] `json:"hugepages"`
	Dmesg               []string           `json:"dmesg"`
	Volatile            Volatile           `json:"volatile"`
}

// Volatile holds values that drift with background activity: do not predict them.
type Volatile struct {
	ZoneFreePages orderedMap[int64] `json:"zone_free_pages"`
	Meminfo       orderedMap[int64] `json:"meminfo"`
	Vmstat        orderedMap[int64] `json:"vmstat"`
	DmesgDumpPage []string          `json:"dmesg_dump_page"`
	DmesgOther    []string          `json:"dmesg_other"`
}

// SummaryZone is a zone's row in the summary.
type SummaryZone struct {
	Spanned  int64  `json:"spanned"`
	Present  int64  `json:"present"`
	Managed  int64  `json:"managed"`
	StartPfn *int64 `json:"start_pfn,omitempty"`
}

// SummaryRow is one compact line per step.
type SummaryRow struct {
	Step           int                     `json:"step"`
	Op             string                  `json:"op"`
	Args           orderedMap[any]         `json:"args"`
	OK             bool                    `json:"ok"`
	Errno          *string                 `json:"errno"`
	Ejected        *bool                   `json:"ejected"`
	Blocks         orderedMap[string]      `json:"blocks"`
	Zones          orderedMap[SummaryZone] `json:"zones"`
	MemTotalKB     int64                   `json:"MemTotal_kB"`
	HugePagesTotal int64                   `json:"HugePages_Total"`
}

var (
	meminfoKept     = []string{"MemTotal", "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp", "Hugepagesize", "Hugetlb"}
	meminfoVolatile = []string{"MemFree", "MemAvailable", "AnonPages", "Slab", "KernelStack", "PageTables", "SecPageTables", "DirectMap4k", "DirectMap2M", "DirectMap1G"}
	vmstatVolatile  = []string{"nr_free_pages", "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_zone_inactive_file", "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending", "nr_isolated_anon", "nr_isolated_file", "nr_page_table_pages"}
	vmstatMemmap    = []string{"nr_memmap_pages", "nr_memmap_boot_pages"}
	hugepageKeys    = []string{"free_hugepages", "nr_hugepages", "nr_hugepages_mempolicy", "nr_overcommit_hugepages", "resv_hugepages", "surplus_hugepages", "hugetlb_optimize_vmemmap"}
)

// buildObservation turns the sections of an OBSERVE reply into an Observation.
func buildObservation(lines []string) (*Observation, error) {
	sec := splitSections(lines)
	for _, need := range []string{"block_size_bytes", "blockattrs", "zoneinfo", "meminfo", "dmesg"} {
		if _, ok := sec[need]; !ok {
			return nil, fmt.Errorf("observe: section %q missing from the agent's reply", need)
		}
	}
	o := &Observation{}
	bs := strings.TrimSpace(strings.Join(sec["block_size_bytes"], ""))
	if _, err := fmt.Sscanf(bs, "%x", &o.BlockSizeBytes); err != nil {
		return nil, fmt.Errorf("observe: block_size_bytes %q: %v", bs, err)
	}
	o.AutoOnlineBlocks = strings.TrimSpace(strings.Join(sec["auto_online_blocks"], ""))
	o.MemoryHotplugParams = parseFileValues(sec["params"])
	var err error
	if o.Blocks, err = parseBlocks(sec["blockattrs"], sec["blocknodes"]); err != nil {
		return nil, err
	}
	if o.Zones, err = parseZoneinfo(sec["zoneinfo"]); err != nil {
		return nil, err
	}
	mi := parseMeminfo(sec["meminfo"])
	o.Meminfo = pick(mi, meminfoKept...)
	vm := parseVmstat(sec["vmstat"])
	o.VmstatMemmap = pick(vm, vmstatMemmap...)
	o.Iomem = []string{}
	for _, l := range sec["iomem"] {
		if strings.TrimSpace(l) != "" {
			o.Iomem = append(o.Iomem, l)
		}
	}
	o.Hugepages = pick(parseFileValues(sec["hugepages"]), hugepageKeys...)
	var dump, other []string
	o.Dmesg, dump, other = classifyDmesg(sec["dmesg"])
	o.Volatile = Volatile{
		ZoneFreePages: orderedMap[int64]{},
		Meminfo:       pick(mi, meminfoVolatile...),
		Vmstat:        pick(vm, vmstatVolatile...),
		DmesgDumpPage: dump,
		DmesgOther:    other,
	}
	for _, z := range o.Zones {
		o.Volatile.ZoneFreePages = append(o.Volatile.ZoneFreePages, kv[int64]{fmt.Sprintf("%d/%s", z.Node, z.Zone), z.free})
	}
	return o, nil
}

// summarize builds the compact row of a step. hotplug lists the block names that did not exist
// at boot (only those are shown); zones are shown when they span, hold or manage pages.
func summarize(st Step, ok bool, errno *string, ejected *bool, bootBlocks map[string]bool) SummaryRow {
	r := SummaryRow{Step: st.Step, Op: st.Op, Args: st.Args, OK: ok, Errno: errno, Ejected: ejected,
		Blocks: orderedMap[string]{}, Zones: orderedMap[SummaryZone]{}}
	o := st.Observation
	if o == nil {
		return r
	}
	bl := append([]Block(nil), o.Blocks...)
	sort.Slice(bl, func(i, j int) bool { return bl[i].Block < bl[j].Block })
	for _, b := range bl {
		if bootBlocks[b.Name] {
			continue
		}
		r.Blocks = append(r.Blocks, kv[string]{b.Name, b.State + "[" + b.ValidZones + "]"})
	}
	multiNode := false
	for _, z := range o.Zones {
		if z.Node != 0 {
			multiNode = true
		}
	}
	for _, z := range o.Zones {
		if z.Spanned == 0 && z.Present == 0 && z.Managed == 0 {
			continue
		}
		name := z.Zone
		if multiNode {
			name = fmt.Sprintf("%d/%s", z.Node, z.Zone)
		}
		r.Zones = append(r.Zones, kv[SummaryZone]{name, SummaryZone{z.Spanned, z.Present, z.Managed, z.StartPfn}})
	}
	r.MemTotalKB, _ = o.Meminfo.Get("MemTotal")
	r.HugePagesTotal, _ = o.Meminfo.Get("HugePages_Total")
	return r
}
