#!/usr/bin/env bash
# Prepare .gpu-bundle/, the folder a GPU run carries beside the working tree (see
# docs/gpu.md): the GPU machine has its own python3 3.12 with torch but no learn2learn and
# no package registry, so everything benchmarks/gpu_check.sh installs there comes from here.
#
#   .gpu-bundle/learn2learn-0.2.0.tar.gz   the sdist, built there with the image's Cython
#   .gpu-bundle/l2l-c/*.c                  its three extension modules' C, regenerated here
#                                          with Cython < 3.1: used if the image's Cython fails
#   .gpu-bundle/wheels/learn2learn-*.whl   a cp312 build made here: used if nothing compiles
#                                          there (only when PYTHON312 below exists)
#   .gpu-bundle/wheels/*-py3-none-any.whl  pure-Python modules learn2learn imports at import
#                                          time that the image lacks: tqdm, requests and its
#                                          dependencies (benchsuite's runner needs tqdm too)
#   .gpu-bundle/data/omniglot-small        the real Omniglot subset, if it is beside the checkout
#
# The folder is ignored through .git/info/exclude (added here), so name it in the device
# tool's `carry`. Idempotent: what is already there is kept. Needs the registry (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE=${BUNDLE:-.gpu-bundle}
PY=${PY:-.venv/bin/python}                     # has pip, and Cython < 3.1 (tools/setup.sh)
PYTHON312=${PYTHON312:-/root/.pyenv/versions/3.12.1/bin/python3}
L2L_VERSION=0.2.0
SDIST="$BUNDLE/learn2learn-$L2L_VERSION.tar.gz"
PURE_WHEELS=(tqdm requests urllib3 idna charset-normalizer certifi)
OMNIGLOT=../shared/data/omniglot-small

mkdir -p "$BUNDLE/wheels" "$BUNDLE/l2l-c" "$BUNDLE/data"
exclude="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qxF "/$BUNDLE/" "$exclude" 2>/dev/null || echo "/$BUNDLE/" >>"$exclude"

if [ ! -f "$SDIST" ]; then
  echo "[bundle] downloading the learn2learn $L2L_VERSION sdist"
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$BUNDLE" "learn2learn==$L2L_VERSION"
fi

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
tar -xzf "$SDIST" -C "$build"
src="$build/learn2learn-$L2L_VERSION"

if [ ! -f "$BUNDLE/l2l-c/transforms.c" ]; then
  echo "[bundle] regenerating the extension C with $("$PY" -m cython --version 2>&1)"
  for module in meta_dataset task_dataset transforms; do
    "$PY" -m cython -3 "$src/learn2learn/data/$module.pyx" -o "$BUNDLE/l2l-c/$module.c"
  done
fi

if ! ls "$BUNDLE"/wheels/learn2learn-*-cp312-*.whl >/dev/null 2>&1 && [ -x "$PYTHON312" ]; then
  echo "[bundle] building a cp312 learn2learn wheel with $PYTHON312"
  venv="$build/venv312"
  "$PYTHON312" -m venv "$venv"
  "$venv/bin/python" -m pip install -q "setuptools>=68" wheel
  cp "$BUNDLE"/l2l-c/*.c "$src/learn2learn/data/"
  "$venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$BUNDLE/wheels" "$src"
fi

missing=()
for name in "${PURE_WHEELS[@]}"; do
  ls "$BUNDLE"/wheels/"${name//-/_}"-*.whl >/dev/null 2>&1 || missing+=("$name")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[bundle] downloading pure-Python wheels: ${missing[*]}"
  "$PY" -m pip download -q --no-deps --only-binary :all: --implementation py \
    --python-version 3.12 --platform any -d "$BUNDLE/wheels" "${missing[@]}"
fi

if [ -d "$OMNIGLOT" ] && [ ! -d "$BUNDLE/data/omniglot-small" ]; then
  echo "[bundle] copying the Omniglot subset ($(du -sh "$OMNIGLOT" | cut -f1))"
  cp -r "$OMNIGLOT" "$BUNDLE/data/omniglot-small"
fi

echo "[bundle] $BUNDLE: $(du -sh "$BUNDLE" | cut -f1)"
ls -1 "$BUNDLE" "$BUNDLE/wheels"
