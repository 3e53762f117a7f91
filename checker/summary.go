package checker

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/mcheck/mcheck"
)

// SummaryVersion is the version of the JSON summary format.
const SummaryVersion = 1

// Result values of a Summary.
const (
	ResultPass       = "pass"       // the bound was explored, nothing found
	ResultViolation  = "violation"  // an invariant or impl consistency check broke
	ResultDivergence = "divergence" // model and impl disagree
	ResultPartial    = "partial"    // stopped early (max-states, max-memory, interrupted), nothing found
)

// Summary is the machine-readable result of one run (`mcheck --json`), also the input of
// `mcheck merge`. Config fields identify the run; shards of one search have equal configs.
type Summary struct {
	Tool    string `json:"tool"`
	Version int    `json:"version"`
	Mode    string `json:"mode"` // "search" or "simulate"

	Config SummaryConfig `json:"config"`
	Shard  *ShardSummary `json:"shard,omitempty"`

	Result            string       `json:"result"`
	Complete          bool         `json:"complete"`
	StopReason        string       `json:"stop_reason,omitempty"`
	DistinctStates    int64        `json:"distinct_states"`
	Transitions       int64        `json:"transitions"`
	DepthReached      int          `json:"depth_reached"`
	Exhausted         bool         `json:"exhausted,omitempty"`
	ElapsedSeconds    float64      `json:"elapsed_seconds"`
	StatesPerSec      float64      `json:"states_per_sec"`
	TransitionsPerSec float64      `json:"transitions_per_sec"`
	Workers           int          `json:"workers"`
	VisitedBytes      int64        `json:"visited_bytes"`
	BytesPerState     float64      `json:"bytes_per_state"`
	CollisionProb     float64      `json:"collision_probability"`
	PeakHeapBytes     uint64       `json:"peak_heap_bytes"`
	PeakSysBytes      uint64       `json:"peak_sys_bytes"`
	Levels            []LevelStats `json:"levels,omitempty"`
	Walk              *int         `json:"walk,omitempty"`

	Finding *FindingSummary `json:"finding,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// SummaryConfig is what was checked.
type SummaryConfig struct {
	Profile        string   `json:"profile"`
	Kernel         string   `json:"kernel"`
	MemmapOnMemory string   `json:"memmap_on_memory"`
	Blocks         int      `json:"blocks"`
	HVO            bool     `json:"hvo"`
	ZoneDevice     bool     `json:"zone_device"`
	Inject         []string `json:"inject"`
	Ops            []string `json:"ops"`
	Alphabet       int      `json:"alphabet"`
	Depth          int      `json:"depth,omitempty"`
	MaxStates      int64    `json:"max_states,omitempty"`
	ShardPrefix    int      `json:"shard_prefix,omitempty"`
	Seed           uint64   `json:"seed"`
	Steps          int      `json:"steps,omitempty"`
	Walks          int      `json:"walks,omitempty"`
}

// ShardSummary says which part of a sharded search a summary covers.
type ShardSummary struct {
	Index        int   `json:"index"`
	Count        int   `json:"count"`
	PrefixDepth  int   `json:"prefix_depth"`
	PrefixStates int64 `json:"prefix_states"`
}

// FindingSummary is a finding in JSON.
type FindingSummary struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Invariant string   `json:"invariant,omitempty"`
	Expect    string   `json:"expect"`
	Step      int      `json:"step"` // 1-based; 0 = the initial state
	Op        string   `json:"op,omitempty"`
	Model     string   `json:"model,omitempty"`
	Impl      string   `json:"impl,omitempty"`
	Details   []string `json:"details,omitempty"`
	Text      string   `json:"text"`
	Length    int      `json:"length"`
	Path      []string `json:"path"`
	TraceFile string   `json:"trace_file,omitempty"`
	Shard     *int     `json:"shard,omitempty"` // merge: the shard that found it
}

// NewSummaryConfig describes a run of profile p (overrides applied).
func NewSummaryConfig(p *mcheck.Profile, inject []string, kinds []mcheck.OpKind, alphabet int) SummaryConfig {
	c := SummaryConfig{Profile: p.Name, Kernel: p.Kernel.String(), MemmapOnMemory: p.Mode.String(),
		Blocks: p.HotplugBlocks, HVO: p.HVO, ZoneDevice: p.ZoneDevice, Inject: append([]string{}, inject...),
		Alphabet: alphabet}
	for _, k := range kinds {
		c.Ops = append(c.Ops, k.String())
	}
	return c
}

// NewSummary fills a summary from an outcome.
func NewSummary(mode string, cfg SummaryConfig, o *Outcome, traceFile string) *Summary {
	s := &Summary{Tool: "mcheck", Version: SummaryVersion, Mode: mode, Config: cfg,
		Complete: o.Complete, StopReason: o.StopReason, DistinctStates: o.Distinct,
		Transitions: o.Transitions, DepthReached: o.DepthReached, Exhausted: o.Exhausted,
		ElapsedSeconds: o.Elapsed.Seconds(), StatesPerSec: o.StatesPerSec(),
		TransitionsPerSec: o.TransitionsPerSec(), Workers: o.Workers, VisitedBytes: o.VisitedBytes,
		BytesPerState: o.BytesPerState, CollisionProb: o.CollisionProb, PeakHeapBytes: o.PeakHeap,
		PeakSysBytes: o.PeakSys, Levels: o.Levels}
	if o.Shard.Active() {
		s.Shard = &ShardSummary{Index: o.Shard.Index, Count: o.Shard.Count, PrefixDepth: o.PrefixDepth,
			PrefixStates: o.PrefixStates}
	}
	if mode == "simulate" && o.Finding != nil {
		w := o.Walk
		s.Walk = &w
	}
	switch {
	case o.Finding != nil:
		s.Finding = NewFindingSummary(o.Finding, o.Path, traceFile)
		if o.Finding.Kind == KindInvariant || o.Finding.Kind == KindImplCheck {
			s.Result = ResultViolation
		} else {
			s.Result = ResultDivergence
		}
	case o.StopReason != "":
		s.Result = ResultPartial
	default:
		s.Result = ResultPass
	}
	return s
}

// NewFindingSummary converts a finding.
func NewFindingSummary(f *Finding, path []mcheck.Op, traceFile string) *FindingSummary {
	fs := &FindingSummary{ID: f.ID(), Kind: f.Kind, Invariant: f.Invariant, Expect: f.Expect(),
		Step: f.Step + 1, Details: f.Details, Text: f.String(), Length: len(path), TraceFile: traceFile,
		Path: []string{}}
	if f.Step >= 0 {
		fs.Op = f.Op.String()
		fs.Model = f.Model.String()
		fs.Impl = f.Impl.String()
	}
	for _, op := range path {
		fs.Path = append(fs.Path, op.String())
	}
	return fs
}

// ExitCode is the command's exit status for this summary: 1 for a finding, else 0.
func (s *Summary) ExitCode() int {
	if s.Finding != nil {
		return 1
	}
	return 0
}

// ReadSummaryFile reads a JSON summary written by `mcheck --json`.
func ReadSummaryFile(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Summary
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: not an mcheck JSON summary: %v", path, err)
	}
	if s.Tool != "mcheck" || s.Version != SummaryVersion {
		return nil, fmt.Errorf("%s: not an mcheck v%d JSON summary", path, SummaryVersion)
	}
	return &s, nil
}

// WriteJSON writes s indented.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// MergeSummaries combines the summaries of the shards of one sharded search (each of 0..n-1
// exactly once, equal configs). The merged result:
//   - finding: the shortest over the shards (ties: the lowest shard index), exit 1;
//   - complete only if every shard completed; a partial shard makes the merge partial;
//   - distinct states: the shared prefix once plus every shard's own states. States reached from
//     the prefix states of several shards are counted once per shard, so this is an upper bound
//     on the true number (transitions likewise); depth reached is the minimum over shards.
//
// A single unsharded summary merges to itself.
func MergeSummaries(in []*Summary) (*Summary, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("merge: no summaries")
	}
	first := in[0]
	cfg, _ := json.Marshal(first.Config)
	n := 1
	if first.Shard != nil {
		n = first.Shard.Count
	}
	seen := map[int]bool{}
	for i, s := range in {
		c, _ := json.Marshal(s.Config)
		if string(c) != string(cfg) || s.Mode != first.Mode {
			return nil, fmt.Errorf("merge: summary %d was run with a different configuration than summary 1", i+1)
		}
		idx, cnt := 0, 1
		if s.Shard != nil {
			idx, cnt = s.Shard.Index, s.Shard.Count
		}
		if cnt != n {
			return nil, fmt.Errorf("merge: summary %d is shard %d/%d, summary 1 is of %d shards", i+1, idx, cnt, n)
		}
		if seen[idx] {
			return nil, fmt.Errorf("merge: shard %d/%d given twice", idx, n)
		}
		seen[idx] = true
	}
	if len(seen) != n {
		var missing []string
		for i := 0; i < n; i++ {
			if !seen[i] {
				missing = append(missing, fmt.Sprintf("%d/%d", i, n))
			}
		}
		return nil, fmt.Errorf("merge: missing shard(s) %s", strings.Join(missing, ", "))
	}
	sorted := append([]*Summary(nil), in...)
	sort.Slice(sorted, func(i, j int) bool { return shardIndex(sorted[i]) < shardIndex(sorted[j]) })

	out := &Summary{Tool: "mcheck", Version: SummaryVersion, Mode: first.Mode, Config: first.Config,
		Complete: true, DepthReached: -1}
	if n > 1 {
		out.Shard = &ShardSummary{Index: -1, Count: n}
	}
	var prefix int64
	for _, s := range sorted {
		if s.Shard != nil {
			prefix = max(prefix, s.Shard.PrefixStates)
			if out.Shard != nil {
				out.Shard.PrefixDepth = max(out.Shard.PrefixDepth, s.Shard.PrefixDepth)
			}
		}
	}
	if out.Shard != nil {
		out.Shard.PrefixStates = prefix
	}
	out.DistinctStates = prefix
	for _, s := range sorted {
		out.DistinctStates += s.DistinctStates - prefix
		out.Transitions += s.Transitions
		out.ElapsedSeconds = max(out.ElapsedSeconds, s.ElapsedSeconds)
		out.Workers += s.Workers
		out.VisitedBytes = max(out.VisitedBytes, s.VisitedBytes)
		out.PeakHeapBytes = max(out.PeakHeapBytes, s.PeakHeapBytes)
		out.PeakSysBytes = max(out.PeakSysBytes, s.PeakSysBytes)
		if out.DepthReached < 0 || s.DepthReached < out.DepthReached {
			out.DepthReached = s.DepthReached
		}
		if !s.Complete {
			out.Complete = false
			if out.StopReason == "" {
				out.StopReason = s.StopReason
			}
		}
		out.Exhausted = s.Exhausted && (out.Exhausted || s == sorted[0])
		if s.Finding != nil && (out.Finding == nil || s.Finding.Length < out.Finding.Length) {
			f := *s.Finding
			idx := shardIndex(s)
			f.Shard = &idx
			out.Finding = &f
		}
	}
	if out.ElapsedSeconds > 0 {
		out.StatesPerSec = float64(out.DistinctStates) / out.ElapsedSeconds
		out.TransitionsPerSec = float64(out.Transitions) / out.ElapsedSeconds
	}
	out.CollisionProb = CollisionProbability(out.DistinctStates)
	switch {
	case out.Finding != nil:
		out.Result = ResultDivergence
		if strings.HasPrefix(out.Finding.Expect, "violation") {
			out.Result = ResultViolation
		}
	case !out.Complete:
		out.Result = ResultPartial
	default:
		out.Result = ResultPass
	}
	return out, nil
}

func shardIndex(s *Summary) int {
	if s.Shard == nil {
		return 0
	}
	return s.Shard.Index
}
