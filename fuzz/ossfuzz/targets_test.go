// Package ossfuzz holds the OSS-Fuzz / ClusterFuzzLite harnesses, built by oss-fuzz/build.sh with
// compile_native_go_fuzzer. They are thin wrappers over the bodies of the fuzz package's targets
// of the same names (fuzz.CheckBytes, fuzz.CheckTraceText); they live alone in this directory
// because compile_native_go_fuzzer finds a target by grepping its package directory for the
// name and rewrites that one file for libFuzzer (where F.Add seeds are ignored: seed corpora
// come as zip files, see build.sh). Under `go test` they have no seeds and run nothing.
package ossfuzz

import (
	"testing"

	"github.com/mcheck/mcheck/fuzz"
)

var inject = fuzz.InjectFromEnv()

func FuzzLockstep(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzz.CheckBytes(t, data, inject)
	})
}

func FuzzTrace(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		fuzz.CheckTraceText(t, text)
	})
}
