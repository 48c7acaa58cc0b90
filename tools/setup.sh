#!/usr/bin/env bash
# One-stop environment setup for benchsuite: a project-local virtual environment (.venv)
# with the pinned torch, learn2learn built from source, and benchsuite itself (editable,
# with its dev extras). Idempotent: a second run only checks what is already there.
#
# learn2learn 0.2.0 ships only an sdist whose Cython-generated C does not compile on
# Python >= 3.11 (it includes longintrepr.h and calls the old PyCode_New). This script is
# the one place that works around it: it regenerates the C from the .pyx sources with
# Cython < 3.1 and installs the patched tree. Nothing else in the project builds it: only
# learn2learn comes as source (--no-binary learn2learn); its build tools come as wheels.
#
# Installs go through uv (itself a wheel, installed into the environment first): it fetches
# and unpacks wheels in parallel, so torch with its CUDA libraries takes ~15 s instead of
# the ~80 s of pip on a machine without a wheel cache. Bytecode is compiled at install, as
# pip does: without it every process compiles torch's sources again where
# PYTHONDONTWRITEBYTECODE is set (as on CI), ~8 s a start. Where uv cannot be installed,
# pip does the same installs. BENCHSUITE_INSTALLER=pip forces pip.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${BENCHSUITE_VENV:-.venv}
# the tested versions (CI runs on them); pyproject.toml declares the supported range
# (torch>=2.11, torchvision>=0.26: the GPU image runs torch 2.11). Move both together.
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
L2L_VERSION=0.2.0

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip wheel setuptools >/dev/null

if [ "${BENCHSUITE_INSTALLER:-uv}" = uv ] && { [ -x "$VENV/bin/uv" ] || "$PY" -m pip install -q uv; }; then
  install() { "$VENV/bin/uv" pip install -q --compile-bytecode --python "$PY" "$@"; }
else
  install() { "$PY" -m pip install -q "$@"; }
fi

if ! "$PY" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1')" 2>/dev/null; then
  echo "[setup] installing ${TORCH_PINS[*]}"
  install "${TORCH_PINS[@]}"
fi

if ! "$PY" -c "import learn2learn" 2>/dev/null; then
  echo "[setup] building learn2learn $L2L_VERSION from its sdist (Cython C regenerated)"
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  install "cython<3.1" "numpy<2"  # numpy<2 as pyproject.toml requires
  "$PY" -m pip download -q --no-deps --no-binary learn2learn -d "$build" "learn2learn==$L2L_VERSION"
  tar -xzf "$build"/learn2learn-"$L2L_VERSION".tar.gz -C "$build"
  src="$build/learn2learn-$L2L_VERSION"
  for module in meta_dataset task_dataset transforms; do
    "$VENV/bin/cython" -3 "$src/learn2learn/data/$module.pyx" -o "$src/learn2learn/data/$module.c"
  done
  install --no-build-isolation "$src"
fi

echo "[setup] installing benchsuite (editable, dev extras)"
install -e ".[dev]"
echo "[setup] ready: $VENV"
