#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build script for mcheck (run inside the base-builder-go image, which
# provides compile_native_go_fuzzer, $SRC, $OUT and $WORK).
#
# Two native Go fuzz targets, built from the thin harnesses in fuzz/ossfuzz/ (the bodies are
# fuzz.CheckBytes and fuzz.CheckTraceText, the same as fuzz.FuzzLockstep / fuzz.FuzzTrace):
#   fuzz_lockstep  bytes -> fuzz.Decode -> model and impl in lockstep; any finding is a crash
#   fuzz_trace     trace text -> parser / printer round trips
# Seed corpora come from corpus/ (libFuzzer ignores F.Add): each seed is prefixed with its
# 4-byte length, the way the native-Go harness reads a []byte / string argument.
#
# Local check (needs Docker and an oss-fuzz checkout with projects/mcheck = this directory):
#   python3 infra/helper.py build_fuzzers mcheck /path/to/mcheck
#   python3 infra/helper.py run_fuzzer mcheck fuzz_lockstep
cd "$SRC/mcheck"

# The harness build imports go-118-fuzz-build's testing shim; resolve it here (in the build
# container only) rather than in the committed go.mod.
export GOFLAGS=-mod=mod
go get github.com/AdamKorcz/go-118-fuzz-build/testing

compile_native_go_fuzzer github.com/mcheck/mcheck/fuzz/ossfuzz FuzzLockstep fuzz_lockstep
compile_native_go_fuzzer github.com/mcheck/mcheck/fuzz/ossfuzz FuzzTrace fuzz_trace

go run ./fuzz/cmd/mcheck-seeds -corpus corpus -ossfuzz -out "$WORK/seeds_lockstep"
go run ./fuzz/cmd/mcheck-seeds -corpus corpus -ossfuzz -text -out "$WORK/seeds_trace"
zip -j -q "$OUT/fuzz_lockstep_seed_corpus.zip" "$WORK"/seeds_lockstep/*
zip -j -q "$OUT/fuzz_trace_seed_corpus.zip" "$WORK"/seeds_trace/*

# Inputs are small: one op is a handful of bytes and Decode stops after 64 ops.
printf '[libfuzzer]\nmax_len = 512\n' > "$OUT/fuzz_lockstep.options"
printf '[libfuzzer]\nmax_len = 4096\n' > "$OUT/fuzz_trace.options"
