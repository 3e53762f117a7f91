//go:build tools

package mcheck

import (
	_ "github.com/cespare/xxhash/v2"
	_ "github.com/leanovate/gopter"
	_ "github.com/spf13/pflag"
	_ "golang.org/x/term"
	_ "pgregory.net/rapid"
)
