// Command mcheck model-checks the Linux kernel's memory-hotplug machinery. See mcheck --help.
package main

import (
	"os"

	"github.com/mcheck/mcheck/cmd/mcheck/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
