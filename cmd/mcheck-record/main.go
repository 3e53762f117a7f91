// Command mcheck-record records memory-hotplug observations from real Debian kernels booted under
// QEMU. See record/README.md.
package main

import (
	"os"

	"github.com/mcheck/mcheck/record"
)

func main() { os.Exit(record.Main(os.Args[1:], os.Stdout, os.Stderr)) }
