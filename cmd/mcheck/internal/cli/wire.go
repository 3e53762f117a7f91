package cli

import (
	"fmt"
	"strings"

	"github.com/mcheck/mcheck/checker"
	"github.com/mcheck/mcheck/fuzz"
	"github.com/mcheck/mcheck/impl"
	"github.com/mcheck/mcheck/record"
	"github.com/spf13/pflag"
)

// validateInject rejects unknown impl fault switches up front (a usage error).
func validateInject(names []string) error {
	known := impl.FaultNames()
	for _, n := range names {
		ok := false
		for _, k := range known {
			if k == n {
				ok = true
			}
		}
		if !ok {
			return usagef("--inject %q: unknown impl fault (known: %s)", n, strings.Join(known, ", "))
		}
	}
	return nil
}

func runMinimize(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("minimize", pflag.ContinueOnError)
	out := fs.String("out", "./mcheck-out", "directory the minimized trace is written to")
	if done, err := parseFlags(e, fs, args, `usage: mcheck minimize FILE [--out DIR]

Shrinks a failing trace to a minimal one with the same finding (checker.Minimize), prints it and
writes it to DIR. Exit 1 (the minimized trace fails), 2 if the trace is unreadable or passes.`); done || err != nil {
		return ExitOK, err
	}
	path, err := oneArg(fs, "trace FILE")
	if err != nil {
		return 0, err
	}
	t, err := readTrace(path)
	if err != nil {
		return 0, err
	}
	if err := validateInject(t.Inject); err != nil {
		return 0, err
	}
	if err := checkOutDir(*out); err != nil {
		return 0, err
	}
	m, f, err := checker.Minimize(t)
	if err != nil {
		if _, ok := err.(*checker.InternalError); ok {
			return 0, err
		}
		return 0, usagef("%s: %v", path, err)
	}
	file, err := checker.WriteTrace(*out, m, f)
	if err != nil {
		return 0, usagef("writing the minimized trace: %v", err)
	}
	fmt.Fprint(e.stdout, m.String())
	fmt.Fprintf(e.stdout, "# finding: %s\n", strings.ReplaceAll(f.String(), "\n", "\n# "))
	fmt.Fprintf(e.stdout, "# %d ops -> %d ops, written to %s\n", len(t.Ops), len(m.Ops), file)
	return ExitFinding, nil
}

func runImport(e *env, args []string) (int, error) {
	fs := pflag.NewFlagSet("import", pflag.ContinueOnError)
	if done, err := parseFlags(e, fs, args, `usage: mcheck import FILE

Turns what a fuzzer left behind (a native fuzz input, a rapid fail file, a go-fuzz crasher) into an
mcheck trace on stdout (fuzz.ImportFile).`); done || err != nil {
		return ExitOK, err
	}
	path, err := oneArg(fs, "FILE")
	if err != nil {
		return 0, err
	}
	t, err := fuzz.ImportFile(path)
	if err != nil {
		return 0, usagef("%v", err)
	}
	fmt.Fprint(e.stdout, t.String())
	return ExitOK, nil
}

func runRecord(e *env, args []string) (int, error) {
	return record.Main(args, e.stdout, e.stderr), nil
}
