#!/usr/bin/env bash
# GPU timing (issue 10, part 3): the paper's GMU -> maxout-MLP model and the plain GMU classifier
# at MM-IMDb's shape, batch 128 and 1024, and the seed's toy (100 Adam steps), on burn's wgpu
# backend. Prints one JSON line per model: samples/s after warm-up (median of --reps runs) and the
# warm-up time (the first 3 steps: kernel compilation and burn's autotuning).
#
# It builds nothing: build on the development machine, then carry the binaries.
#   cargo bench --features wgpu --no-run            # here, once
#   mkdir -p bench/bin && cp $(ls -t target/release/deps/mmimdb-* | grep -v '\.d$' | head -1) bench/bin/mmimdb \
#     && cp $(ls -t target/release/deps/toy-* | grep -v '\.d$' | head -1) bench/bin/toy
# On a device machine without Vulkan's loader, carry it as the device tool's README says
# (`.gl/*.deb` unpacked with dpkg -x, then `ldconfig`; VK_DRIVER_FILES for NVIDIA's ICD).
# Usage: bench/gpu.sh [--steps N] [--reps N] [BIN_DIR (default bench/bin)]
# burn keeps its autotune results in its cache folder (~/.cache/burn); a second run on the same
# machine starts from them, so the warm-up time of a first run and a second run are both printed.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=50
reps=5
bin=bench/bin
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) bin=$1; shift ;;
  esac
done
for b in mmimdb toy; do
  [ -x "$bin/$b" ] || { echo "no $bin/$b: build it with --features wgpu and carry it (see the top of this script)" >&2; exit 1; }
done
export BURN_DEVICE=wgpu
for pass in first second; do
  echo "# $pass run (burn's autotune cache: $([ $pass = first ] && echo cold || echo warm))"
  for batch in 128 1024; do
    "$bin/mmimdb" --only fusion --batch $batch --steps "$steps" --reps "$reps"
    "$bin/mmimdb" --only gmu --batch $batch --steps "$steps" --reps "$reps"
  done
  "$bin/toy" --only gmu-burn --reps "$reps"
done
