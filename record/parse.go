package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// kv is one entry of an orderedMap.
type kv[V any] struct {
	K string
	V V
}

// orderedMap marshals as a JSON object keeping insertion order (the guest's order), so the
// recordings read like the files they were taken from.
type orderedMap[V any] []kv[V]

func (m orderedMap[V]) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.K)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.V)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns the value of key k.
func (m orderedMap[V]) Get(k string) (V, bool) {
	for _, e := range m {
		if e.K == k {
			return e.V, true
		}
	}
	var zero V
	return zero, false
}

// agentReply is one parsed answer of the guest agent.
type agentReply struct {
	Cmd   string
	RC    int
	Lines []string
}

// parseEndLine reads "@@END <cmd> rc=<n>".
func parseEndLine(line string) (cmd string, rc int, ok bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != agentEnd || !strings.HasPrefix(f[2], "rc=") {
		return "", 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(f[2], "rc="))
	if err != nil {
		return "", 0, false
	}
	return f[1], n, true
}

// splitSections splits an OBSERVE reply into its "@@S name" sections.
func splitSections(lines []string) map[string][]string {
	out := map[string][]string{}
	cur := ""
	for _, l := range lines {
		if strings.HasPrefix(l, agentSection+" ") {
			cur = strings.TrimSpace(strings.TrimPrefix(l, agentSection+" "))
			if _, ok := out[cur]; !ok {
				out[cur] = []string{}
			}
			continue
		}
		if cur != "" {
			out[cur] = append(out[cur], l)
		}
	}
	return out
}

// Block is one /sys/devices/system/memory/memoryN directory.
type Block struct {
	Block        int    `json:"block"`
	Name         string `json:"name"`
	State        string `json:"state"`
	PhysIndex    string `json:"phys_index"`
	PhysIndexInt int    `json:"phys_index_int"`
	ValidZones   string `json:"valid_zones"`
	Removable    string `json:"removable"`
	Node         string `json:"node"`
	PhysDevice   string `json:"phys_device"`
	Online       string `json:"online"`
}

// parseBlocks reads the "blockattrs" (grep -H . memoryN/attr) and "blocknodes"
// (ls -d memoryN/nodeX) sections. Blocks are sorted by id.
func parseBlocks(attrs, nodes []string) ([]Block, error) {
	byName := map[string]*Block{}
	get := func(name string) (*Block, error) {
		if b, ok := byName[name]; ok {
			return b, nil
		}
		n, err := strconv.Atoi(strings.TrimPrefix(name, "memory"))
		if err != nil || !strings.HasPrefix(name, "memory") {
			return nil, fmt.Errorf("bad memory block name %q", name)
		}
		b := &Block{Block: n, Name: name, PhysIndexInt: -1}
		byName[name] = b
		return b, nil
	}
	for _, l := range attrs {
		p, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		dir, attr := path.Split(p)
		b, err := get(strings.TrimSuffix(dir, "/"))
		if err != nil {
			return nil, err
		}
		switch attr {
		case "state":
			b.State = val
		case "phys_index":
			b.PhysIndex = val
			n, err := strconv.ParseInt(val, 16, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: phys_index %q: %v", b.Name, val, err)
			}
			b.PhysIndexInt = int(n)
		case "valid_zones":
			b.ValidZones = val
		case "removable":
			b.Removable = val
		case "phys_device":
			b.PhysDevice = val
		case "online":
			b.Online = val
		}
	}
	for _, l := range nodes {
		dir, node := path.Split(strings.TrimSpace(l))
		if !strings.HasPrefix(node, "node") {
			continue
		}
		b, err := get(strings.TrimSuffix(dir, "/"))
		if err != nil {
			return nil, err
		}
		b.Node = strings.TrimPrefix(node, "node")
	}
	out := make([]Block, 0, len(byName))
	for _, b := range byName {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Block < out[j].Block })
	return out, nil
}

// Zone is one zone of /proc/zoneinfo. StartPfn is nil for zones without memory (the kernel
// prints no start_pfn line for them).
type Zone struct {
	Node       int     `json:"node"`
	Zone       string  `json:"zone"`
	Boost      int64   `json:"boost"`
	Min        int64   `json:"min"`
	Low        int64   `json:"low"`
	High       int64   `json:"high"`
	Spanned    int64   `json:"spanned"`
	Present    int64   `json:"present"`
	Managed    int64   `json:"managed"`
	Cma        int64   `json:"cma"`
	Protection []int64 `json:"protection"`
	StartPfn   *int64  `json:"start_pfn,omitempty"`

	free int64 // "pages free": volatile
}

var zoneHeadRE = regexp.MustCompile(`^Node\s+(\d+),\s+zone\s+(\S+)`)

// parseZoneinfo reads /proc/zoneinfo. Only the watermark block ("pages free" .. "protection")
// and start_pfn are read; per-node and per-zone counters are skipped, as are the pagesets (whose
// "high:" must not be mistaken for the watermark).
func parseZoneinfo(lines []string) ([]Zone, error) {
	var out []Zone
	var z *Zone
	inWM := false
	for _, raw := range lines {
		l := strings.TrimSpace(raw)
		if m := zoneHeadRE.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, Zone{Node: n, Zone: m[2], Protection: []int64{}})
			z = &out[len(out)-1]
			inWM = false
			continue
		}
		if z == nil {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		num := func(s string) (int64, error) {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("zoneinfo node %d zone %s: %q: %v", z.Node, z.Zone, l, err)
			}
			return v, nil
		}
		switch {
		case len(f) == 3 && f[0] == "pages" && f[1] == "free":
			v, err := num(f[2])
			if err != nil {
				return nil, err
			}
			z.free = v
			inWM = true
		case inWM && f[0] == "protection:":
			s := strings.Trim(strings.TrimSpace(strings.TrimPrefix(l, "protection:")), "()")
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				v, err := num(p)
				if err != nil {
					return nil, err
				}
				z.Protection = append(z.Protection, v)
			}
			inWM = false
		case inWM && len(f) == 2:
			v, err := num(f[1])
			if err != nil {
				return nil, err
			}
			switch f[0] {
			case "boost":
				z.Boost = v
			case "min":
				z.Min = v
			case "low":
				z.Low = v
			case "high":
				z.High = v
			case "spanned":
				z.Spanned = v
			case "present":
				z.Present = v
			case "managed":
				z.Managed = v
			case "cma":
				z.Cma = v
			}
		case f[0] == "start_pfn:" && len(f) == 2:
			v, err := num(f[1])
			if err != nil {
				return nil, err
			}
			z.StartPfn = &v
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("zoneinfo: no zones")
	}
	return out, nil
}

// parseMeminfo reads /proc/meminfo into name -> value (kB, or a count for HugePages_*).
func parseMeminfo(lines []string) orderedMap[int64] {
	var m orderedMap[int64]
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		m = append(m, kv[int64]{strings.TrimSpace(k), n})
	}
	return m
}

// parseVmstat reads /proc/vmstat ("name value" lines).
func parseVmstat(lines []string) orderedMap[int64] {
	var m orderedMap[int64]
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		m = append(m, kv[int64]{f[0], n})
	}
	return m
}

// parseFileValues reads "path:value" lines (grep -H output) into basename -> value.
func parseFileValues(lines []string) orderedMap[string] {
	m := orderedMap[string]{}
	for _, l := range lines {
		p, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		m = append(m, kv[string]{path.Base(p), v})
	}
	sort.SliceStable(m, func(i, j int) bool { return m[i].K < m[j].K })
	return m
}

// pick returns the entries of m named in keys, in keys' order (missing keys are skipped).
func pick[V any](m orderedMap[V], keys ...string) orderedMap[V] {
	out := orderedMap[V]{}
	for _, k := range keys {
		if v, ok := m.Get(k); ok {
			out = append(out, kv[V]{k, v})
		}
	}
	return out
}

var dmesgStampRE = regexp.MustCompile(`^\[\s*\d+\.\d+\]\s?`)

// stripDmesg removes the "[   1.234567] " timestamp prefix.
func stripDmesg(l string) string { return dmesgStampRE.ReplaceAllString(l, "") }

// dmesg lines are split three ways: about memory hotplug / the memory map / ACPI (kept in the
// observation), dump_page() output (volatile: addresses and refcounts), everything else
// (volatile: boot chatter).
var (
	dmesgDumpPageRE = regexp.MustCompile(`^(page:|page dumped because|flags: 0x|raw: |head: |page_type:|memcg:|page_owner)`)
	dmesgMemRE      = regexp.MustCompile(`(?i)(memory|memmap|hotplug|hot-plug|hot plug|offlin|onlin|e820|SRAT|ACPI|acpiphp|zone|movable|pfn|HugeTLB|vmemmap|Command line|section|node 0: \[mem|\bmem\b|eject|pnp|dimm|Built \d+ zonelists)`)
)

// classifyDmesg splits new dmesg lines (timestamps stripped) into kept, dump_page and other.
// Indented continuation lines go with the line they continue.
func classifyDmesg(lines []string) (kept, dumpPage, other []string) {
	kept, dumpPage, other = []string{}, []string{}, []string{}
	last := &other
	for _, raw := range lines {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		l := stripDmesg(raw)
		switch {
		case l != "" && (l[0] == ' ' || l[0] == '\t'):
			// continuation of the previous line
		case dmesgDumpPageRE.MatchString(l):
			last = &dumpPage
		case strings.HasPrefix(l, "Memory: ") || strings.HasPrefix(l, "Linux version"):
			last = &other
		case dmesgMemRE.MatchString(l):
			last = &kept
		default:
			last = &other
		}
		*last = append(*last, l)
	}
	return
}

// errnos lists errno names with their x86_64 numbers; the message is syscall.Errno's text.
var errnos = []struct {
	name string
	num  syscall.Errno
}{
	{"EPERM", 1}, {"ENOENT", 2}, {"ESRCH", 3}, {"EINTR", 4}, {"EIO", 5}, {"ENXIO", 6},
	{"E2BIG", 7}, {"ENOEXEC", 8}, {"EBADF", 9}, {"ECHILD", 10}, {"EAGAIN", 11}, {"ENOMEM", 12},
	{"EACCES", 13}, {"EFAULT", 14}, {"EBUSY", 16}, {"EEXIST", 17}, {"ENODEV", 19},
	{"ENOTDIR", 20}, {"EISDIR", 21}, {"EINVAL", 22}, {"ENFILE", 23}, {"EMFILE", 24},
	{"ENOSPC", 28}, {"EROFS", 30}, {"ERANGE", 34}, {"EDEADLK", 35}, {"ENOSYS", 38},
	{"ENODATA", 61}, {"ETIME", 62}, {"EOVERFLOW", 75}, {"EOPNOTSUPP", 95}, {"ETIMEDOUT", 110},
	{"EHWPOISON", 133},
}

// errnoFromMessage maps a shell error such as "sh: write error: Device or resource busy" to an
// errno name ("EBUSY"). It returns "" when no known strerror text ends the message.
func errnoFromMessage(msg string) string {
	m := strings.ToLower(strings.TrimSpace(msg))
	if m == "" {
		return ""
	}
	// busybox ash's own wording for a failed open of a missing path
	if strings.HasSuffix(m, "nonexistent directory") {
		return "ENOENT"
	}
	best, bestLen := "", 0
	for _, e := range errnos {
		t := strings.ToLower(e.num.Error())
		if strings.HasSuffix(m, t) && len(t) > bestLen {
			best, bestLen = e.name, len(t)
		}
	}
	return best
}
