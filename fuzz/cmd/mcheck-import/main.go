// Command mcheck-import turns what a fuzzer left behind into a trace (fuzz.ImportFile), and with
// -minimize shrinks it (checker.Minimize) and, with -o, files it in the corpus:
//
//	go run ./fuzz/cmd/mcheck-import fuzz/testdata/fuzz/FuzzLockstep/0123abcd
//	go run ./fuzz/cmd/mcheck-import -minimize -o corpus/found fuzz/testdata/rapid/TestRapidLockstep/*.fail
//	go run ./fuzz/cmd/mcheck-import -inject online-skips-vmemmap-present -minimize -o corpus/bugs crasher
//
// Inputs: native fuzz corpus files, rapid fail files, go-fuzz crashers / corpus files (raw
// bytes), OSS-Fuzz test cases of fuzz_lockstep (raw bytes with a 4-byte length prefix: -ossfuzz),
// and trace files. Byte inputs record no impl faults: give them with -inject (default
// $MCHECK_FUZZ_INJECT). Exit status: 0 ok, 1 the trace has no finding (with -minimize), 2 bad input.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcheck/mcheck/checker"
	"github.com/mcheck/mcheck/fuzz"
)

func main() {
	inject := flag.String("inject", os.Getenv(fuzz.InjectEnv), "impl faults for byte inputs (comma-separated)")
	minimize := flag.Bool("minimize", false, "minimize the trace (checker.Minimize); fails if it has no finding")
	out := flag.String("o", "", "write each trace into this directory (named <profile>-<finding>-<hash>.trace) instead of stdout")
	ossfuzz := flag.Bool("ossfuzz", false, "inputs are OSS-Fuzz fuzz_lockstep test cases (strip the 4-byte length prefix)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: mcheck-import [-inject F,..] [-minimize] [-o DIR] [-ossfuzz] FILE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var inj []string
	for _, s := range strings.Split(*inject, ",") {
		if s = strings.TrimSpace(s); s != "" && s != "-" {
			inj = append(inj, s)
		}
	}
	status := 0
	for _, path := range flag.Args() {
		if err := one(path, inj, *minimize, *out, *ossfuzz); err != nil {
			fmt.Fprintf(os.Stderr, "mcheck-import: %s: %v\n", path, err)
			if status == 0 {
				status = 2
				if strings.Contains(err.Error(), "no finding") {
					status = 1
				}
			}
		}
	}
	os.Exit(status)
}

func one(path string, inject []string, minimize bool, out string, ossfuzz bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if ossfuzz && len(data) >= 4 {
		data = data[4:]
	}
	t, err := fuzz.Import(data, path, inject)
	if err != nil {
		return err
	}
	f, err := checker.RunTrace(t)
	if err != nil {
		return err
	}
	if minimize {
		n := len(t.Ops)
		if t, f, err = checker.Minimize(t); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: minimized %d ops to %d: %s\n", path, n, len(t.Ops), firstLine(f.String()))
	} else if f != nil {
		t.Expect = f.Expect()
	} else {
		t.Expect = "pass"
	}
	t.Comments = append(t.Comments, "imported from "+filepath.Base(path))
	if out == "" {
		fmt.Print(t.String())
		return nil
	}
	name, err := checker.WriteTrace(out, t, f)
	if err != nil {
		return err
	}
	fmt.Println(name)
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
