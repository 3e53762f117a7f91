// Package cli is the mcheck command: flags, subcommands, progress and output. main.go only calls
// Main, so that tests reach every code path.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/mcheck/mcheck/checker"
	"github.com/spf13/pflag"
)

// Exit codes (design.md).
const (
	ExitOK          = 0   // no violation within the bound (also: a bound stopped by --max-states/--max-memory)
	ExitFinding     = 1   // a violation or divergence was found
	ExitUsage       = 2   // bad usage or bad input
	ExitInternal    = 3   // a bug in mcheck
	ExitInterrupted = 130 // SIGINT/SIGTERM stopped a search that had found nothing (128 + SIGINT)
)

// usageError is bad usage or input: one line on stderr, exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// internalError is a bug: exit 3.
type internalError struct {
	err   error
	stack []byte
}

func (e *internalError) Error() string { return e.err.Error() }

type env struct {
	stdout, stderr io.Writer
}

// command is one subcommand.
type command struct {
	name, args, help string
	run              func(e *env, args []string) (int, error)
}

var commands []command

func init() {
	commands = []command{
		{"check", "[flags]", "bounded exhaustive search or simulation (the default command)", runCheck},
		{"replay", "FILE", "re-run a trace: each step's op, both results and what changed", runReplay},
		{"explain", "--profile P [--block-size S] [--kernel K] [--memmap-on-memory M]", "memmap_on_memory arithmetic of a profile", runExplain},
		{"profiles", "", "table of the built-in profiles", runProfiles},
		{"ops", "[--profile P]", "the op alphabet and the concrete ops the search enumerates", runOps},
		{"merge", "FILE...", "combine the --json summaries of the shards of a search", runMerge},
		{"minimize", "FILE", "shrink a failing trace to a minimal one with the same finding", runMinimize},
		{"import", "FILE", "turn a fuzzer's crasher or rapid fail file into a trace", runImport},
		{"record", "[args]", "record real-kernel behaviour under QEMU (see record/README.md)", runRecord},
	}
}

// Main runs the command line args (without the program name) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	e := &env{stdout: stdout, stderr: stderr}
	defer func() {
		if r := recover(); r != nil {
			code = e.fail(&internalError{fmt.Errorf("panic: %v", r), debug.Stack()})
		}
	}()
	cmd := "check"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" {
		if len(args) == 0 {
			fmt.Fprint(stdout, topUsage())
			return ExitOK
		}
		cmd, args = args[0], []string{"--help"}
	}
	for _, c := range commands {
		if c.name == cmd {
			code, err := c.run(e, args)
			if err != nil {
				return e.fail(err)
			}
			return code
		}
	}
	return e.fail(usagef("unknown command %q (commands: %s; see mcheck --help)", cmd, commandNames()))
}

func commandNames() string {
	var n []string
	for _, c := range commands {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

// fail prints err in one line and returns its exit code.
func (e *env) fail(err error) int {
	var ue *usageError
	var ie *internalError
	var ce *checker.InternalError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "mcheck: %s\n", oneLine(ue.msg))
		return ExitUsage
	case errors.As(err, &ce):
		ie = &internalError{err, ce.Stack}
		fallthrough
	case errors.As(err, &ie):
		fmt.Fprintf(e.stderr, "mcheck: internal error: %s; please report with the command line\n", oneLine(ie.err.Error()))
		if os.Getenv("MCHECK_DEBUG") == "1" && len(ie.stack) > 0 {
			e.stderr.Write(ie.stack)
		} else if len(ie.stack) > 0 {
			fmt.Fprintln(e.stderr, "mcheck: (set MCHECK_DEBUG=1 to print the stack)")
		}
		return ExitInternal
	}
	// Anything else is an I/O or environment error: treat as bad input.
	fmt.Fprintf(e.stderr, "mcheck: %s\n", oneLine(err.Error()))
	return ExitUsage
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	return s
}

func topUsage() string {
	var b strings.Builder
	b.WriteString(`mcheck model-checks the kernel's memory-hotplug machinery: it runs the reference model and the
bitmap implementation in lockstep over every op sequence up to a bound, and either proves that no
invariant breaks and no divergence appears, or prints the shortest counterexample and writes it as a
replayable trace file.

usage: mcheck [check] [flags]        (see mcheck check --help for every flag)
       mcheck COMMAND [args]

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n            %s\n", c.name, c.args, c.help)
	}
	b.WriteString(`
exit codes: 0 no violation within the bound (also a bound stopped early by --max-states or
--max-memory: the summary says "bound not completed") · 1 a violation or divergence was found ·
2 bad usage or bad input · 3 internal error (a bug in mcheck; please report it with the command
line) · 130 interrupted by SIGINT/SIGTERM before anything was found (a partial summary is printed).
Details: docs/search.md, docs/sharding.md.

flags of check:
`)
	b.WriteString(checkFlags(nil).FlagUsagesWrapped(100))
	return b.String()
}

// parseFlags parses args with fs; --help prints the usage and returns done.
func parseFlags(e *env, fs *pflag.FlagSet, args []string, usage string) (done bool, err error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(e.stdout, usage+"\n\nflags:\n"+fs.FlagUsagesWrapped(100))
			return true, nil
		}
		return false, usagef("%v (see mcheck %s --help)", err, fs.Name())
	}
	if *help {
		fmt.Fprint(e.stdout, usage+"\n\nflags:\n"+fs.FlagUsagesWrapped(100))
		return true, nil
	}
	return false, nil
}

// ParseSize reads a byte count: a number with an optional K, M, G or T suffix (powers of 1024),
// optionally followed by "i", "iB" or "B" (512M, 2G, 128MiB, 1GB, 4096).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	u = strings.TrimSuffix(u, "B")
	u = strings.TrimSuffix(u, "I")
	mult := int64(1)
	if n := len(u); n > 0 {
		switch u[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			u = u[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
	if err != nil || v < 0 || (mult > 1 && v > (1<<62)/mult) {
		return 0, fmt.Errorf("%q is not a size (e.g. 512M, 2G, 128MiB, 4096)", s)
	}
	return v * mult, nil
}

// sizeValue is a pflag.Value for sizes.
type sizeValue struct{ v *int64 }

func (s sizeValue) String() string {
	if s.v == nil || *s.v == 0 {
		return "0"
	}
	return fmtBytes(uint64(*s.v))
}
func (s sizeValue) Set(x string) error {
	n, err := ParseSize(x)
	if err != nil {
		return err
	}
	*s.v = n
	return nil
}
func (s sizeValue) Type() string { return "BYTES" }

func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// comma formats n with thousands separators.
func comma(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
