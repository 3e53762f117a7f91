module github.com/mcheck/mcheck

go 1.26.8

require (
	github.com/cespare/xxhash/v2 v2.3.0 // state fingerprints (Snapshot.Hash)
	github.com/leanovate/gopter v0.2.11 // gopter command-based property (fuzz/)
	github.com/spf13/pflag v1.0.10 // GNU-style flags of mcheck
	golang.org/x/term v0.47.0 // progress only when stderr is a terminal
	pgregory.net/rapid v1.3.0 // rapid state-machine property (fuzz/)
)

require golang.org/x/sys v0.49.0 // indirect
