module github.com/mcheck/mcheck/fuzz/gofuzz

go 1.26.8

require github.com/mcheck/mcheck v0.0.0

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dvyukov/go-fuzz v0.0.0-20220726122315-1d375ef9f9f6
	github.com/leanovate/gopter v0.2.11 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/term v0.47.0 // indirect
	pgregory.net/rapid v1.3.0 // indirect
)

replace github.com/mcheck/mcheck => ../..
