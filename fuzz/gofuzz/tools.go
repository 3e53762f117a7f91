//go:build tools

package gofuzz

// go-fuzz-build instruments the package and links go-fuzz-dep; requiring it here keeps it in
// go.mod (go mod tidy considers this file).
import _ "github.com/dvyukov/go-fuzz/go-fuzz-dep"
