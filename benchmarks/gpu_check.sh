#!/usr/bin/env bash
# One GPU check, run once on a bare GPU machine: the cuda-marked tests, the op benchmark
# (fp32, bf16), the T backbone and Mask R-CNN (ours beside mmdet's Swin-T). Each part runs
# under its own time cap and writes JSON into OUTDIR; gpu_check.md gathers them in tables.
#
#   bash benchmarks/gpu_check.sh --prepare          # here, with network: fill .whl/ (below)
#   bash benchmarks/gpu_check.sh OUTDIR             # on the GPU machine, carrying .whl/
#   bash benchmarks/gpu_check.sh OUTDIR --dry-run   # any CPU: every part at tiny sizes
#
# The GPU machine has torch, triton and Python 3.12 but no OpenMMLab packages and no network.
# --prepare copies the CUDA mmcv 2.1.0 wheel from ../shared/device-wheels (or $DEVICE_WHEELS)
# into the git-ignored .whl/, adds the mmengine/mmdet/mmseg wheels that folder's fetch.sh
# downloads, and checks that the working tree plus .whl/ stays under the 64 MiB that may
# travel. On the GPU, the install part puts .whl/*.whl and this checkout into /tmp/site.
# --dry-run uses the current Python's packages ($PYTHON, default python3), runs on the CPU
# with the Triton kernels interpreted, and is what tests/benchmarks/test_gpu_check.py runs in
# CI, so the script cannot rot; its numbers mean nothing.
#
# Time caps in seconds, set by environment variables; the defaults sum to 510 s (plus at most
# 5 s of kill grace per part), inside one 9-minute run on an H100. The first launch of each
# Triton kernel variant compiles it (seconds each), and the tests' float64 oracle loops over
# 67,200 positions in Python, forward and backward, four times: the tests get the most.
#   CAP_INSTALL=40 CAP_TESTS=150 CAP_OPS=60 (per dtype) CAP_BACKBONE=90 CAP_MASKRCNN=110
# Files in OUTDIR (8, what the device tool brings back): parts.jsonl (one status line per
# part), tests.json, ops-fp32.json, ops-bf16.json, backbone.json, maskrcnn.json,
# gpu_check.md, gpu_check.log. Exit status 0 only if every part succeeded.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
SITE=/tmp/site
TRAVEL_LIMIT_KIB=$((64 * 1024))

die() { echo "gpu_check.sh: $*" >&2; exit 2; }

prepare() {
    local src="${DEVICE_WHEELS:-$ROOT/../shared/device-wheels}"
    ls "$src"/mmcv-2.1.0-cp312-*.whl >/dev/null 2>&1 \
        || die "no mmcv-2.1.0-cp312 wheel in $src; set DEVICE_WHEELS to the device-wheels folder"
    cd "$ROOT"
    git check-ignore -q .whl/ || die ".whl/ is not git-ignored; add /.whl/ to .gitignore"
    rm -rf .whl && mkdir .whl
    cp "$src"/mmcv-2.1.0-cp312-*.whl .whl/
    bash "$src/fetch.sh" .whl >/dev/null || die "fetch.sh failed (it needs network access)"
    local whl tree
    whl=$(du -sk .whl | cut -f1)
    tree=$(git ls-files -co --exclude-standard -z | du -ck --files0-from=- | tail -1 | cut -f1)
    echo "prepared .whl/: $(ls .whl | wc -l) wheels, ${whl} KiB; working tree ${tree} KiB;" \
         "together $((whl + tree)) KiB of the ${TRAVEL_LIMIT_KIB} KiB that may travel"
    [ $((whl + tree)) -lt "$TRAVEL_LIMIT_KIB" ] || die "too large to travel; remove files"
}

install() {  # on the GPU machine: the wheels and this checkout into $SITE
    cd "$ROOT"
    ls .whl/mmcv-*.whl >/dev/null 2>&1 \
        || die "no .whl/ here: run 'bash benchmarks/gpu_check.sh --prepare' first and carry .whl"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        .whl/*.whl || return
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
        --no-cache-dir --target "$SITE" . || return
    "$PY" -c 'import mmcv.ops, mmdet.apis, mmseg.apis, mmspatialmamba.ops, torch, triton
print("installed; torch", torch.__version__, "triton", triton.__version__,
      "cuda", torch.cuda.is_available())'
}

part() {  # part NAME CAP COMMAND...: run COMMAND under a time cap, log it, record its status
    local name=$1 cap=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (cap ${cap} s): $*" | tee -a "$LOG"
    timeout -k 5 "$cap" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    printf '{"part": "%s", "rc": %d, "seconds": %d, "cap": %d}\n' \
        "$name" "$rc" $((SECONDS - start)) "$cap" >> "$OUTDIR/parts.jsonl"
    [ "$rc" -eq 0 ] || FAILED=1
}

case "${1:-}" in
    --prepare) prepare; exit ;;
    --install) install; exit ;;   # the install part, run by this script on the GPU
    ""|-h|--help) sed -n '2,/^set -/p' "${BASH_SOURCE[0]}" | sed '$d'; exit 2 ;;
esac
OUTDIR=$1
DRY_RUN=${2:-}
[ -z "$DRY_RUN" ] || [ "$DRY_RUN" = --dry-run ] || die "unknown option $DRY_RUN; use --dry-run"
mkdir -p "$OUTDIR" && OUTDIR="$(cd "$OUTDIR" && pwd)"
LOG="$OUTDIR/gpu_check.log"
rm -f "$OUTDIR"/{parts.jsonl,tests.json,ops-fp32.json,ops-bf16.json,backbone.json} \
    "$OUTDIR"/{maskrcnn.json,gpu_check.md,gpu_check.log}
cd "$ROOT"
FAILED=0
# PYTHONSAFEPATH: the checkout's mmspatialmamba/ lacks ops/ (setup.py maps it), so neither the
# working directory nor a script's folder may shadow the installed package.
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
if [ -n "$DRY_RUN" ]; then
    # One thread: at these sizes more threads only wait on each other (on a busy 2-core
    # machine the Mask R-CNN part ran 5x slower with two).
    export TRITON_INTERPRET=1 OMP_NUM_THREADS=1
    echo '{"part": "install", "rc": 0, "seconds": 0, "cap": 0, "note": "skipped (dry run)"}' \
        >> "$OUTDIR/parts.jsonl"
    OPS_ARGS=(--device cpu --small)
else
    # 0, not unset: tests/conftest.py turns the interpreter on unless the variable is set.
    export TRITON_INTERPRET=0 PYTHONPATH="$SITE"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
        --format=csv 2>&1 | tee -a "$LOG"
    part install "${CAP_INSTALL:-40}" bash "${BASH_SOURCE[0]}" --install
    OPS_ARGS=()
fi
part tests "${CAP_TESTS:-150}" "$PY" benchmarks/gpu_check.py tests "$OUTDIR" $DRY_RUN
for dtype in fp32 bf16; do
    part "ops-$dtype" "${CAP_OPS:-60}" "$PY" benchmarks/bench_ops.py "${OPS_ARGS[@]}" \
        --dtype "$dtype" --json "$OUTDIR/ops-$dtype.json"
done
part backbone "${CAP_BACKBONE:-90}" "$PY" benchmarks/gpu_check.py backbone "$OUTDIR" $DRY_RUN
part maskrcnn "${CAP_MASKRCNN:-110}" "$PY" benchmarks/gpu_check.py maskrcnn "$OUTDIR" $DRY_RUN
"$PY" benchmarks/gpu_check.py report "$OUTDIR"
exit $FAILED
