// Package conformance replays hotplug recordings from a real kernel (booted under QEMU) through the
// reference model and compares every recorded observation with the model's prediction.
//
// A recording is a JSON file in the format of ../shared/conformance (and corpus/kernel/): a list
// of steps (observe, plug, state, unplug), each with what the kernel reported afterwards. The
// mapping onto model ops is explicit here:
//   - plug (ACPI DIMM) = add_memory of the DIMM's blocks; the ACPI driver passes
//     MHP_MEMMAP_ON_MEMORY only when the range passes mhp_supports_memmap_on_memory() on
//     5.13-6.5 and always on 6.6+ (drivers/acpi/acpi_memhotplug.c);
//   - state = online / online_kernel / online_movable / offline on the block;
//   - unplug = ACPI eject: acpi_scan_try_to_offline offlines every online block of the DIMM
//     (device_offline); if one fails, the ones it offlined are onlined again with device_online
//     (no online type: the "auto" zone rule) and nothing is ejected; otherwise the memory is
//     removed (__remove_memory) and the DIMM ejected;
//   - environment: a block onlined to a kernel zone receives the kernel's own unmovable allocations
//     (the recordings show slab pages there at once), mapped onto the model's pin op; a later
//     offline the kernel lets succeed unpins first. Observations decided by these environment ops
//     are counted apart (Report.Env).
//
// Compared per step: the op's result, every hot-plugged block's state and valid_zones, boot blocks'
// states, the change since the first observation of present/managed/spanned of Normal and
// Movable (and start_pfn while spanned), of DMA+DMA32 present/managed, and of MemTotal.
package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/mcheck/mcheck"
	"github.com/mcheck/mcheck/model"
)

// Recording is one scenario recorded from a real kernel.
type Recording struct {
	Scenario    string `json:"scenario"`
	Description string `json:"description"`
	Kernel      struct {
		Short   string `json:"short"`
		Release string `json:"release"`
	} `json:"kernel"`
	Status string `json:"status"`
	Steps  []Step `json:"steps"`
}

// Step is one recorded action and what the kernel reported after it.
type Step struct {
	Step        int             `json:"step"`
	Op          string          `json:"op"`
	Args        map[string]any  `json:"args"`
	Result      json.RawMessage `json:"result"`
	Observation Observation     `json:"observation"`
}

// Observation is the guest's view after a step.
type Observation struct {
	BlockSizeBytes int64             `json:"block_size_bytes"`
	Params         map[string]string `json:"memory_hotplug_params"`
	Blocks         []struct {
		Block      int    `json:"block"`
		State      string `json:"state"`
		ValidZones string `json:"valid_zones"`
	} `json:"blocks"`
	Zones []struct {
		Zone     string `json:"zone"`
		Spanned  int    `json:"spanned"`
		Present  int    `json:"present"`
		Managed  int    `json:"managed"`
		StartPfn *int   `json:"start_pfn"`
	} `json:"zones"`
	Meminfo map[string]float64 `json:"meminfo"`
}

type stepResult struct {
	OK        *bool  `json:"ok"`
	Errno     any    `json:"errno"`
	Ejected   *bool  `json:"ejected"`
	NewBlocks []int  `json:"new_blocks"`
	Error     string `json:"error"`
}

// Load reads a recording.
func Load(path string) (*Recording, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Recording
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(r.Steps) == 0 || r.Steps[0].Op != "observe" {
		return nil, fmt.Errorf("%s: a recording starts with an observe step", path)
	}
	return &r, nil
}

// Mismatch is one observation the model did not predict.
type Mismatch struct {
	Step  int
	Op    string
	Field string
	Want  string // recorded by the kernel
	Got   string // predicted by the model
}

func (m Mismatch) String() string {
	return fmt.Sprintf("step %d (%s): %s: kernel %s, model %s", m.Step, m.Op, m.Field, m.Want, m.Got)
}

// Report is the outcome of replaying one recording.
type Report struct {
	Scenario   string
	Kernel     string
	Profile    mcheck.Profile
	Matched    int
	Total      int
	Env        int // observations explained by an environment op of the mapping
	Mismatches []Mismatch
	Ops        []string // the model ops the recording mapped to
}

// ProfileFor builds the model profile of a recording: x86_64-4k with the recorded kernel release,
// memmap_on_memory parameter, memory block size and boot memory.
func ProfileFor(r *Recording) (mcheck.Profile, error) {
	p, err := mcheck.LookupProfile("x86_64-4k")
	if err != nil {
		return p, err
	}
	rel := r.Kernel.Short
	if rel == "" {
		rel = r.Kernel.Release
	}
	k, err := mcheck.ParseKernel(rel)
	if err != nil {
		return p, err
	}
	p.Kernel = k
	obs := r.Steps[0].Observation
	switch v := strings.ToLower(obs.Params["memmap_on_memory"]); v {
	case "y", "1", "on":
		p.Mode = mcheck.ModeOn
	case "n", "0", "off", "":
		p.Mode = mcheck.ModeOff
	case "force":
		p.Mode = mcheck.ModeForce
	default:
		return p, fmt.Errorf("unknown memmap_on_memory parameter %q", v)
	}
	if obs.BlockSizeBytes > 0 {
		sec := int64(p.PagesPerSection()) << p.PageShift
		if obs.BlockSizeBytes%sec != 0 {
			return p, fmt.Errorf("block size %d is not a multiple of the section size", obs.BlockSizeBytes)
		}
		p.SectionsPerBlock = int(obs.BlockSizeBytes / sec)
	}
	boot := 0
	for _, b := range obs.Blocks {
		boot = max(boot, b.Block+1)
	}
	if boot > 0 {
		p.BootBlocks = boot
		if p.HotplugStart < boot {
			p.HotplugStart = boot
		}
	}
	p.Name = "x86_64-4k"
	return p, p.Validate()
}

type zoneVals struct{ present, managed, spanned, start int }

func kernelZones(o *Observation) map[string]zoneVals {
	out := map[string]zoneVals{}
	for _, z := range o.Zones {
		v := zoneVals{present: z.Present, managed: z.Managed, spanned: z.Spanned, start: -1}
		if z.StartPfn != nil && z.Spanned > 0 {
			v.start = *z.StartPfn
		}
		out[z.Zone] = v
	}
	return out
}

func modelZones(s *mcheck.Snapshot) map[string]zoneVals {
	out := map[string]zoneVals{}
	for _, z := range []mcheck.ZoneID{mcheck.ZoneNormal, mcheck.ZoneMovable} {
		zs := s.Zones[z]
		v := zoneVals{present: zs.Present, managed: zs.Managed, spanned: zs.End - zs.Start, start: -1}
		if v.spanned > 0 {
			v.start = zs.Start
		}
		out[z.String()] = v
	}
	d := s.Zones[mcheck.ZoneDMA32]
	out["DMA32"] = zoneVals{present: d.Present, managed: d.Managed}
	return out
}

func errnoName(v any) string {
	switch e := v.(type) {
	case nil:
		return "0"
	case string:
		return strings.TrimPrefix(e, "-")
	case float64:
		return mcheck.Errno(int(-e)).String()
	}
	return fmt.Sprint(v)
}

// Replay maps the recording onto model ops and compares every observation.
func Replay(r *Recording) (*Report, error) {
	p, err := ProfileFor(r)
	if err != nil {
		return nil, err
	}
	m := model.New(p)
	rep := &Report{Scenario: r.Scenario, Kernel: r.Kernel.Short, Profile: p}
	base := r.Steps[0].Observation
	baseK := kernelZones(&base)
	baseM := modelZones(m.Snapshot())
	baseMem := int(base.Meminfo["MemTotal"])
	dimms := map[string][]int{} // DIMM id -> its memory blocks
	pins := map[int]int{}       // environment pins per block (kernel allocations in a kernel zone)
	gone := map[string]bool{}   // DIMMs already ejected
	check := func(st *Step, field, want, got string) {
		rep.Total++
		if want == got {
			rep.Matched++
			return
		}
		rep.Mismatches = append(rep.Mismatches, Mismatch{st.Step, st.Op, field, want, got})
	}
	apply := func(op mcheck.Op) mcheck.Result {
		rep.Ops = append(rep.Ops, op.String())
		return m.Apply(op)
	}
	bs := p.BlockPages()
	for i := range r.Steps {
		st := &r.Steps[i]
		var res stepResult
		if len(st.Result) > 0 {
			_ = json.Unmarshal(st.Result, &res)
		}
		switch st.Op {
		case "observe":
		case "plug":
			size, _ := st.Args["size"].(float64)
			id, _ := st.Args["id"].(string)
			nr := int(int64(size) / (int64(bs) << p.PageShift))
			first := nextFreeBlock(m, &p, dimms)
			if len(res.NewBlocks) > 0 {
				first = res.NewBlocks[0]
			}
			mmom := true // 6.6+: ACPI always asks, the core decides (or falls back)
			if p.KP() <= mcheck.P2 {
				mmom, _ = p.SupportsMemmapOnMemory(nr)
			}
			r := apply(mcheck.Op{Kind: mcheck.OpAddMemory, Block: first, Nr: nr, MMOM: mmom})
			var got []int
			if r.Errno == mcheck.OK {
				for b := first; b < first+nr; b++ {
					got = append(got, b)
				}
				dimms[id] = got
			}
			check(st, "plug ok", fmt.Sprint(res.OK == nil || *res.OK), fmt.Sprint(r.Errno == mcheck.OK))
			check(st, "new_blocks", fmt.Sprint(res.NewBlocks), fmt.Sprint(got))
		case "state":
			block := blockArg(st.Args, dimms)
			op := mcheck.Op{Kind: mcheck.OpOnline, Block: block}
			switch v, _ := st.Args["value"].(string); v {
			case "online":
				op.Type = mcheck.OnlineAuto
			case "online_kernel":
				op.Type = mcheck.OnlineKernel
			case "online_movable":
				op.Type = mcheck.OnlineMovable
			case "offline":
				op = mcheck.Op{Kind: mcheck.OpOffline, Block: block}
			default:
				return nil, fmt.Errorf("step %d: unknown state value %q", st.Step, v)
			}
			want := "0"
			if res.OK != nil && !*res.OK {
				want = errnoName(res.Errno)
			}
			env := explainEnvironment(m, op, want, pins, apply)
			r := apply(op)
			if r.Errno == mcheck.OK && op.Kind == mcheck.OpOnline {
				kernelAllocations(m, op.Block, pins, apply)
			}
			if env && want == r.Errno.String() {
				rep.Total++
				rep.Matched++
				rep.Env++
			} else {
				check(st, "result", want, r.Errno.String())
			}
		case "unplug":
			id, _ := st.Args["id"].(string)
			ejected := false
			if !gone[id] {
				ejected = eject(m, dimms[id], pins, apply)
				gone[id] = ejected
			}
			want := res.Ejected != nil && *res.Ejected
			check(st, "ejected", fmt.Sprint(want), fmt.Sprint(ejected))
		default:
			return nil, fmt.Errorf("step %d: unknown op %q", st.Step, st.Op)
		}
		compareObservation(rep, st, m, &p, check, baseK, baseM, baseMem)
	}
	return rep, nil
}

// explainEnvironment maps outcomes that depend on the rest of the kernel onto environment ops,
// explicitly: an offline of a kernel-zone block that the kernel refused with EBUSY had unmovable
// kernel allocations in it (pin); an offline that succeeds after that means they were freed (unpin).
func explainEnvironment(m *model.Machine, op mcheck.Op, want string, pins map[int]int, apply func(mcheck.Op) mcheck.Result) bool {
	if op.Kind != mcheck.OpOffline {
		return false
	}
	b := m.Snapshot().Block(op.Block)
	if b == nil || b.State != mcheck.BlockOnline || b.Boot {
		return false
	}
	switch {
	case want == mcheck.EBUSY.String() && pins[op.Block] > 0:
		return true // the kernel allocations placed when it came online
	case want == mcheck.EBUSY.String() && b.Zone != mcheck.ZoneMovable && pins[op.Block] == 0:
		if apply(mcheck.Op{Kind: mcheck.OpPin, Block: op.Block}).Errno == mcheck.OK {
			pins[op.Block]++
			return true
		}
	case want == "0" && pins[op.Block] > 0:
		for ; pins[op.Block] > 0; pins[op.Block]-- {
			apply(mcheck.Op{Kind: mcheck.OpUnpin, Block: op.Block})
		}
		return true
	}
	return false
}

func blockArg(args map[string]any, dimms map[string][]int) int {
	if id, ok := args["dimm"].(string); ok {
		idx, _ := args["block"].(float64)
		if bl := dimms[id]; int(idx) < len(bl) {
			return bl[int(idx)]
		}
	}
	if b, ok := args["memory_block"].(float64); ok {
		return int(b)
	}
	b, _ := args["block"].(float64)
	return int(b)
}

// nextFreeBlock is where QEMU places the next DIMM: after the highest plugged one, from 4 GiB.
func nextFreeBlock(m *model.Machine, p *mcheck.Profile, dimms map[string][]int) int {
	next := p.HotplugStart
	for _, bl := range dimms {
		for _, b := range bl {
			next = max(next, b+1)
		}
	}
	return next
}

// kernelAllocations is the environment after a block comes online in a kernel zone: the kernel's
// own unmovable allocations (slab) land there at once, as the recordings show, so a later
// offline fails with EBUSY unless the recording says otherwise (explainEnvironment then unpins).
func kernelAllocations(m *model.Machine, block int, pins map[int]int, apply func(mcheck.Op) mcheck.Result) {
	if b := m.Snapshot().Block(block); b != nil && b.Zone != mcheck.ZoneMovable && pins[block] == 0 {
		if apply(mcheck.Op{Kind: mcheck.OpPin, Block: block}).Errno == mcheck.OK {
			pins[block]++
		}
	}
}

// eject is acpi_scan_hot_remove for a DIMM: offline its online blocks (acpi_scan_try_to_offline),
// roll back with device_online on failure, else remove the memory.
func eject(m *model.Machine, blocks []int, pins map[int]int, apply func(mcheck.Op) mcheck.Result) bool {
	if len(blocks) == 0 {
		return false
	}
	s := m.Snapshot()
	var offlined []int
	for _, b := range blocks {
		if bs := s.Block(b); bs != nil && bs.State == mcheck.BlockOnline {
			if r := apply(mcheck.Op{Kind: mcheck.OpOffline, Block: b}); r.Errno != mcheck.OK {
				for _, o := range offlined { // device_online: no online type, the "auto" zone
					if apply(mcheck.Op{Kind: mcheck.OpOnline, Block: o, Type: mcheck.OnlineAuto}).Errno == mcheck.OK {
						kernelAllocations(m, o, pins, apply)
					}
				}
				return false
			}
			offlined = append(offlined, b)
		}
	}
	r := apply(mcheck.Op{Kind: mcheck.OpRemoveMemory, Block: blocks[0], Nr: len(blocks)})
	return r.Errno == mcheck.OK
}

func compareObservation(rep *Report, st *Step, m *model.Machine, p *mcheck.Profile,
	check func(*Step, string, string, string), baseK, baseM map[string]zoneVals, baseMem int) {
	obs := &st.Observation
	s := m.Snapshot()
	// Blocks: every block the kernel lists, and no hot-plugged block the kernel does not list.
	seen := map[int]bool{}
	for _, b := range obs.Blocks {
		seen[b.Block] = true
		mb := s.Block(b.Block)
		got := "absent"
		if mb != nil {
			got = mb.State.String()
		}
		if b.Block < p.BootBlocks {
			check(st, fmt.Sprintf("memory%d state", b.Block), b.State, got)
			continue // boot blocks' valid_zones name DMA/DMA32 splits the model does not have
		}
		check(st, fmt.Sprintf("memory%d", b.Block), b.State+"["+b.ValidZones+"]", got+"["+m.ValidZones(b.Block)+"]")
	}
	var extra []string
	for _, b := range s.Blocks {
		if !seen[b.ID] {
			extra = append(extra, "memory"+strconv.Itoa(b.ID))
		}
	}
	sort.Strings(extra)
	check(st, "blocks the kernel does not list", "[]", fmt.Sprint(extra))
	// Zones: changes since the first observation.
	kz, mz := kernelZones(obs), modelZones(s)
	for _, name := range []string{"Normal", "Movable"} {
		k, k0, mm, m0 := kz[name], baseK[name], mz[name], baseM[name]
		check(st, name+" present delta", strconv.Itoa(k.present-k0.present), strconv.Itoa(mm.present-m0.present))
		check(st, name+" managed delta", strconv.Itoa(k.managed-k0.managed), strconv.Itoa(mm.managed-m0.managed))
		check(st, name+" spanned delta", strconv.Itoa(k.spanned-k0.spanned), strconv.Itoa(mm.spanned-m0.spanned))
		if k.spanned > 0 || mm.spanned > 0 {
			check(st, name+" start_pfn", strconv.Itoa(k.start), strconv.Itoa(mm.start))
		}
	}
	kb := kz["DMA"].present + kz["DMA32"].present - baseK["DMA"].present - baseK["DMA32"].present
	check(st, "DMA+DMA32 present delta", strconv.Itoa(kb), strconv.Itoa(mz["DMA32"].present-baseM["DMA32"].present))
	if mt, ok := obs.Meminfo["MemTotal"]; ok {
		var dm int
		for name, v := range mz {
			dm += v.managed - baseM[name].managed
		}
		check(st, "MemTotal delta (kB)", strconv.Itoa(int(mt)-baseMem), strconv.Itoa(dm*p.PageBytes()/1024))
	}
}
