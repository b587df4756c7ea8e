#!/usr/bin/env bash
# Train the Explorer world on a lent accelerator in one call, and bring back what it made.
#
# 1. Generates the training data (the Explorer's exploration policy, WORKERS processes).
# 2. Runs Self Forcing (configs/dmd-anchor.toml) from the bundled world once per entry of RUNS,
#    all side by side on DEVICE, each ended after MINUTES of wall time with a final world.
# 3. Packs each run's generator weights, config and training log into OUT/<name>.tar: one file
#    per run, because a device call returns at most 8 files of 16 MiB.
# 4. With BENCH=1, measures the bundled world's speed (`worldsim bench`) into OUT/bench.json.
#
# Needs torch, numpy, einops and safetensors only (no Gymnasium, no pygame) and no install: the
# package is imported from this checkout. Settings come from the environment:
#
#   DEVICE=cuda  FRAMES=200000  WORKERS=14  MINUTES=7  BATCH=32  BENCH=1
#   STEPS=                      steps per run (empty: the config's, 316; MINUTES ends a run sooner)
#   INIT=explorer-64            the world every run starts from (also its real score)
#   RUNS="w4 w8:anchor_weight=8"
#                               name:setting,setting,... (each setting as `--set` takes it)
#   OUT=./device-out  WORK=/tmp/worldsim-device  PYTHON=python
#
# Example (a device call, from the repository root):
#   OUT=$OUT MINUTES=7 bash examples/device_training.sh
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

DEVICE="${DEVICE:-cuda}"
FRAMES="${FRAMES:-200000}"
WORKERS="${WORKERS:-14}"
MINUTES="${MINUTES:-7}"
BATCH="${BATCH:-32}"
STEPS="${STEPS:-}"
BENCH="${BENCH:-1}"
INIT="${INIT:-explorer-64}"
RUNS="${RUNS:-w4 w8:anchor_weight=8}"
OUT="${OUT:-./device-out}"
WORK="${WORK:-/tmp/worldsim-device}"
PYTHON="${PYTHON:-python}"

worldsim() { "$PYTHON" -m worldsim "$@"; }

mkdir -p "$OUT" "$WORK"
data="$WORK/data"
worldsim data generate --world explorer --frames "$FRAMES" --workers "$WORKERS" --out "$data" --quiet

names=()
pids=()
for entry in $RUNS; do
    name="${entry%%:*}"
    settings=()
    if [[ -n "$STEPS" ]]; then settings+=(--set "steps=$STEPS"); fi
    if [[ "$entry" == *:* ]]; then
        IFS=',' read -r -a pairs <<< "${entry#*:}"
        for pair in "${pairs[@]}"; do settings+=(--set "$pair"); done
    fi
    worldsim train dmd --config "$repo_root/configs/dmd-anchor.toml" --data "$data" --out "$WORK/$name" \
        --set "init=$INIT" --set "teacher=$INIT" --set "device=$DEVICE" --set "batch_size=$BATCH" \
        --set "max_minutes=$MINUTES" "${settings[@]}" > "$WORK/$name.log" 2>&1 &
    names+=("$name")
    pids+=("$!")
done

failed=0
for i in "${!names[@]}"; do
    name="${names[$i]}"
    if wait "${pids[$i]}"; then
        tar -cf "$OUT/$name.tar" -C "$WORK" "$name.log" "$name/metrics.csv" "$name/summary.json" \
            "$name/final/config.json" "$name/final/transformer.safetensors"
        echo "run $name: packed into $OUT/$name.tar"
    else
        failed=1
        tail -n 40 "$WORK/$name.log" > "$OUT/$name-failed.log"
        echo "run $name failed: the end of its log is in $OUT/$name-failed.log" >&2
    fi
done

if [[ "$BENCH" == 1 ]]; then
    worldsim bench --checkpoint "$INIT" --device "$DEVICE" --out "$OUT/bench.json" > /dev/null
    echo "bench: $OUT/bench.json"
fi
exit "$failed"
