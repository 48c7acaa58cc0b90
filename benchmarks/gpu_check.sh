#!/usr/bin/env bash
# The prepared GPU check of issue 15 (docs/gpu.md), for a bare CUDA machine with its own
# python3 (3.12, torch, pandas, matplotlib, tabulate, typer, pytest, Cython) and no package
# registry. Run from the repository root with .gpu-bundle/ (tools/gpu_bundle.sh) carried:
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh
#
# It installs learn2learn from the bundle into a scratch folder put on PYTHONPATH (the
# project itself runs from the tree: PYTHONPATH=.), then benchmarks/gpu_check.py measures
# ours vs learn2learn, runs a seeded grid twice and compares the records, runs
# `benchsuite verify`, and writes reports/PERFORMANCE-cuda.md. Raw output goes to $OUT
# (at most 6 files: install.log, commands.log, raw.json, records.tar.gz, the report, and
# whatever the caller tees there).
#
# Environment: DEVICE (cuda; `cpu` rehearses the script with tiny sizes and writes
# reports/PERFORMANCE-cpu-rehearsal.md instead), PYTHON (python3), BUNDLE (.gpu-bundle),
# OUT (reports/gpu-check), BUDGET_S (seconds for the measurements after the install; 390).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BUNDLE=${BUNDLE:-.gpu-bundle}
OUT=${OUT:-reports/gpu-check}
BUDGET_S=${BUDGET_S:-390}
WORK=$(mktemp -d -t gpu-check-XXXXXX)
SITE="$WORK/site"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
started=$(date +%s)

echo "[gpu-check] $(date -u +%FT%TZ) device=$DEVICE python=$("$PYTHON" --version 2>&1)"
if [ ! -f "$BUNDLE/learn2learn-0.2.0.tar.gz" ]; then
  echo "[gpu-check] $BUNDLE/ is missing: run tools/gpu_bundle.sh and carry it" >&2
  exit 2
fi
if [ "$DEVICE" != "cpu" ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
fi

# 1. learn2learn (+ tqdm, requests, …) from the bundle, before they are on the path, so
#    a module the image has is not shadowed by the carried one
PYTHONPATH=. "$PYTHON" benchmarks/gpu_check.py install --bundle "$BUNDLE" --target "$SITE" \
  >"$OUT/install.log" 2>&1
status=$?
tail -4 "$OUT/install.log"
if [ $status -ne 0 ]; then
  echo "[gpu-check] learn2learn install failed (exit $status); see install.log" >&2
  exit 3
fi
export PYTHONPATH="$PWD:$SITE"
echo "[gpu-check] installed in $(( $(date +%s) - started )) s"

# 2. measurements and the report
args=(run --device "$DEVICE" --work "$WORK" --raw "$OUT" --install-info "$SITE/INSTALL.json"
      --budget "$BUDGET_S")
[ -d "$BUNDLE/data/omniglot-small" ] && args+=(--data-root "$BUNDLE/data/omniglot-small")
[ "$DEVICE" = "cpu" ] && args+=(--smoke)
"$PYTHON" -m benchmarks.gpu_check "${args[@]}"
status=$?
echo "[gpu-check] done in $(( $(date +%s) - started )) s (exit $status)"
rm -rf "$WORK"
exit $status
