#!/usr/bin/env bash
# Create (or refresh) the git-ignored virtual environment .venv at the repository root.
#
# Idempotent: every step first checks whether its result is already there, so a second run
# with everything installed takes seconds. mmcv 2.1.0 has no wheel for torch 2.13 on PyPI and
# is compiled from source once (6-10 minutes on 2 idle cores, longer on a busy machine; a line
# every 15 s shows the units compiled and the log's path); the built wheel is kept in
# $MMSM_WHEEL_CACHE (default ~/.cache/mmspatialmamba/wheels), outside the clone, so a fresh
# clone on the same machine reuses it. Versions and the reasons for each flag: docs/stack.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
WHEELS="${MMSM_WHEEL_CACHE:-$HOME/.cache/mmspatialmamba/wheels}"
PYTHON="${PYTHON:-python3}"
PROGRESS_EVERY="${MMSM_PROGRESS_EVERY:-15}"  # seconds between progress lines of the mmcv build
# shellcheck source=tools/build_progress.sh
source "$ROOT/tools/build_progress.sh"

TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0
MMSEG_VERSION=1.2.2
RUFF_VERSION=0.17.5

step() { STEP="$1"; echo "[setup] $1" >&2; }
fail() {
    echo "[setup] FAILED at step: $STEP" >&2
    echo "[setup] $1" >&2
    exit 1
}
trap 'fail "see the output above; fix the cause and run this script again (it resumes where it stopped). To start over: rm -rf $VENV"' ERR

step "check python ($PYTHON)"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 9), sys.version' \
    || fail "Python >= 3.9 is required; set PYTHON=/path/to/python3 and run again."

step "virtual environment $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -U pip
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

have() {  # have PKG VERSION: true when PKG==VERSION is installed in the venv
    "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split("+")[0] == sys.argv[2] else 1)
PYEOF
}

step "torch $TORCH_VERSION"
have torch "$TORCH_VERSION" || "${PIP[@]}" "torch==$TORCH_VERSION"

step "build tools (setuptools<81 keeps pkg_resources for mmcv's setup.py)"
"$PY" -c 'import setuptools, wheel, ninja, pkg_resources' 2>/dev/null \
    || "${PIP[@]}" "setuptools>=77,<81" wheel ninja

step "mmcv $MMCV_VERSION (compiled from source once, cached in $WHEELS)"
if ! have mmcv "$MMCV_VERSION"; then
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
        LOG="$WHEELS/mmcv-$MMCV_VERSION-build.log"
        echo "[setup] compiling mmcv $MMCV_VERSION with CPU ops: 6-10 minutes on" \
             "2 idle cores, longer on a busy machine; progress every ${PROGRESS_EVERY}s" >&2
        run_with_progress mmcv "$LOG" "$PROGRESS_EVERY" \
            env MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$PY" -m pip wheel -v --no-deps --no-build-isolation -w "$WHEELS" "mmcv==$MMCV_VERSION" \
            || fail "compiling mmcv failed; the compiler's messages are in $LOG (tail -50 $LOG)."
    fi
    "${PIP[@]}" --find-links "$WHEELS" "mmcv==$MMCV_VERSION"
fi

step "mmengine $MMENGINE_VERSION, mmdet $MMDET_VERSION, mmsegmentation $MMSEG_VERSION, triton, onnx, onnxruntime, pytest"
if ! (have mmengine "$MMENGINE_VERSION" && have mmdet "$MMDET_VERSION" \
      && have mmsegmentation "$MMSEG_VERSION" \
      && "$PY" -c 'import triton, pytest, ftfy, regex, onnx, onnxruntime, onnxscript' 2>/dev/null); then
    "${PIP[@]}" "mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION" \
        "mmsegmentation==$MMSEG_VERSION" ftfy regex pytest triton onnx onnxruntime onnxscript
fi

step "ruff $RUFF_VERSION (lint, run by .ci/run)"
have ruff "$RUFF_VERSION" || "${PIP[@]}" "ruff==$RUFF_VERSION"

step "mmspatialmamba (editable; again when mmspatialmamba/version.py changes)"
if ! "$PY" - <<'PYEOF' 2>/dev/null
from importlib.metadata import version
import mmspatialmamba, mmspatialmamba.ops
assert version('mmspatialmamba') == mmspatialmamba.__version__
PYEOF
then
    "${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"
fi

step "check the stack imports"
"$PY" -c 'import torch, mmcv.ops, mmdet.apis, mmseg.apis, mmspatialmamba' \
    || fail "the environment is incomplete; run: rm -rf $VENV && bash tools/setup_env.sh"
echo "[setup] ready: $VENV" >&2
