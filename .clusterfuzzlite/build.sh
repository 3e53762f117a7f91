#!/bin/bash -eu
# ClusterFuzzLite runs this inside its base-builder-go image; the real build script is shared with
# OSS-Fuzz.
exec "$SRC/mcheck/oss-fuzz/build.sh"
