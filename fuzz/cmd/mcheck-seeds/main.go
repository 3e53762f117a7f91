// Command mcheck-seeds writes seed corpora for the fuzzers from the trace corpus:
//
//   - bytes (default): every corpus trace that fuzz.Decode reproduces, encoded with fuzz.Encode,
//     one file per trace, plus the empty input: FuzzLockstep / go-fuzz inputs;
//   - -text: every corpus trace's text: FuzzTrace inputs.
//
// -ossfuzz prefixes each seed with its length as a 4-byte big-endian number, the way OSS-Fuzz's
// native-Go harness (go-118-fuzz-build, go-fuzz-headers' GetBytes/GetString) reads a []byte or
// string argument from the libFuzzer input.
//
//	go run ./fuzz/cmd/mcheck-seeds -out fuzz/gofuzz/workdir/corpus
//	go run ./fuzz/cmd/mcheck-seeds -ossfuzz -out $WORK/lockstep && zip -j $OUT/fuzz_lockstep_seed_corpus.zip $WORK/lockstep/*
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcheck/mcheck/corpus"
	"github.com/mcheck/mcheck/fuzz"
)

func main() {
	out := flag.String("out", "", "directory to write the seeds to (created)")
	root := flag.String("corpus", corpus.Dir(), "corpus directory")
	text := flag.Bool("text", false, "write trace texts (FuzzTrace seeds) instead of encoded bytes")
	ossfuzz := flag.Bool("ossfuzz", false, "prefix each seed with its 4-byte big-endian length (OSS-Fuzz native Go harness)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mcheck-seeds -out DIR [-corpus DIR]")
		os.Exit(2)
	}
	if err := run(*out, *root, *text, *ossfuzz); err != nil {
		fmt.Fprintln(os.Stderr, "mcheck-seeds:", err)
		os.Exit(1)
	}
}

func run(out, root string, text, ossfuzz bool) error {
	write := func(name string, data []byte) error {
		if ossfuzz {
			n := len(data)
			data = append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, data...)
		}
		return os.WriteFile(filepath.Join(out, name), data, 0o644)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	ts, files, err := corpus.Load(root)
	if err != nil {
		return err
	}
	n := 0
	for i, t := range ts {
		rel, _ := filepath.Rel(root, files[i])
		name := strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(strings.TrimSuffix(rel, ".trace"))
		var data []byte
		if text {
			data = []byte(t.String())
		} else {
			p, err := t.ResolveProfile()
			if err != nil || !fuzz.Encodable(p, t.Ops) {
				continue
			}
			data = fuzz.Encode(p, t.Ops)
		}
		if err := write(name, data); err != nil {
			return err
		}
		n++
	}
	if !text {
		if err := write("empty", nil); err != nil {
			return err
		}
		n++
	}
	fmt.Printf("wrote %d seeds to %s\n", n, out)
	return nil
}
