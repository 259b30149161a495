#!/usr/bin/env bash
# The GPU check: one command on a GPU machine whose first minutes give a verdict on the
# Triton kernels, then their speed (docs/gpu.md). Parts, in order, each under its own time cap (seconds):
#
#   install      40  the wheels of .whl/ and this checkout into /tmp/site (on a GPU machine
#                    with .whl/; skipped where mmspatialmamba, mmdet, mmseg are installed)
#   compile      80  Triton, torch and CUDA versions; every kernel variant the parts below
#                    launch, counted and compiled in parallel processes into Triton's cache
#   tests       150  correctness: Triton against the PyTorch path at the models' shapes (ops
#                    and backbone, fp32/bf16/fp16, forward and backward), the float64 oracle
#                    at small shapes, every other cuda test (but the ops' older model-shape
#                    test_cuda_triton_matches_torch); pytest-xdist, 6 workers
#   sanitizer    50  compute-sanitizer memcheck, racecheck, initcheck on tiny calls at GPU
#                    launch sizes (says so and goes on where the tool is missing or refused)
#   determinism  40  each op twice, outputs and gradients bit for bit
#   ops          60  bench_ops.py: Triton beside the PyTorch composition, fp32, bf16, fp16
#   backbone     50  T backbone at 224 batch 128: inference and training, fp32 and bf16
#   maskrcnn     70  Mask R-CNN T beside mmdet's Swin-T, 2 images of 800x1344, fp32 and fp16
#
# The verdict parts (install to determinism) take at most 360 s, all parts 540 s plus 5 s of
# kill grace each: one 10-minute command. The compile cap comes from the dry run's count:
# the real run compiles 257 kernel variants (the dry run's compile part prints the number);
# at 1-2 s each, 14 processes (nproc - 2 on 16 cores) need 20-40 s. After it only the tests
# part compiles: the variants of the suite's other cuda tests, whose shapes are their own.
# The report's table counts what each part compiled (new cubins in Triton's cache), so a
# variant the compile part missed shows. All parts run with MMSM_BACKEND=triton: a kernel that fails
# fails its test instead of falling back to the PyTorch path.
#
#   bash benchmarks/gpu_check.sh OUTDIR             # a GPU machine with the package installed
#   bash benchmarks/gpu_check.sh --prepare          # with network: fill .whl/ (below) for...
#   bash benchmarks/gpu_check.sh OUTDIR             # ...a bare GPU machine, carrying .whl/
#   bash benchmarks/gpu_check.sh OUTDIR --dry-run   # any CPU: every part at tiny sizes
#
# A bare GPU machine has torch, triton and pytest (pytest-xdist, compute-sanitizer where
# available) but no OpenMMLab packages and no network. --prepare copies the CUDA mmcv 2.1.0 wheel from ../shared/device-wheels (or
# $DEVICE_WHEELS) into the git-ignored .whl/, adds the mmengine/mmdet/mmseg wheels that
# folder's fetch.sh downloads, and checks that the working tree plus .whl/ stays under the
# 64 MiB that may travel. --dry-run uses the current Python's packages ($PYTHON, default
# python3) on the CPU, the kernels interpreted, except that its compile part compiles one dry
# call's kernels for sm_90 and prints how many variants the real run compiles; it is what
# tests/benchmarks/test_gpu_check.py runs in CI, so the script cannot rot. Its numbers mean
# nothing, and its caps are ten times the real ones (a guard against hangs on a busy CPU).
# Caps are set by environment variables, e.g. CAP_TESTS=200.
#
# Files in OUTDIR: gpu_check.md (its first line is the
# VERDICT; rewritten after every part, so a run cut short has one), gpu_check.log,
# parts.jsonl (one status line per part), results.json (every part's rows), ops.json.
# Exit status 0 only if every part succeeded.
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

cubins() { find "$TRITON_CACHE_DIR" -name '*.cubin' 2>/dev/null | wc -l; }

part() {  # part NAME CAP COMMAND...: run COMMAND under a time cap, log it, record its status
    local name=$1 cap=$(($2 * CAP_SCALE)) start=$SECONDS before rc
    shift 2
    before=$(cubins)
    echo "=== $name (cap ${cap} s): $*" | tee -a "$LOG"
    timeout -k 5 "$cap" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    printf '{"part": "%s", "rc": %d, "seconds": %d, "cap": %d, "compiled": %d}\n' \
        "$name" "$rc" $((SECONDS - start)) "$cap" $(($(cubins) - before)) \
        >> "$OUTDIR/parts.jsonl"
    [ "$rc" -eq 0 ] || FAILED=1
    "$PY" benchmarks/gpu_check.py report "$OUTDIR" > /dev/null
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
rm -f "$OUTDIR"/{parts.jsonl,results.json,ops.json,gpu_check.md,gpu_check.log}
cd "$ROOT"
FAILED=0
# A fresh Triton cache, so the compile part's count is the run's and later parts' are misses.
TRITON_CACHE_DIR="$(mktemp -d /tmp/mmsm_gpu_check_triton.XXXXXX)"
trap 'rm -rf "$TRITON_CACHE_DIR"' EXIT
# PYTHONSAFEPATH: the checkout's mmspatialmamba/ lacks ops/ (setup.py maps it), so neither the
# working directory nor a script's folder may shadow the installed package.
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1 MMSM_BACKEND=triton TRITON_CACHE_DIR
if [ -n "$DRY_RUN" ]; then
    # One thread: at these sizes more threads only wait on each other (on a busy 2-core
    # machine the Mask R-CNN part ran 5x slower with two). No GPU, even where there is one:
    # the dry run is the CPU run it claims to be.
    export TRITON_INTERPRET=1 OMP_NUM_THREADS=1 MMSM_GPU_CHECK=dry CUDA_VISIBLE_DEVICES=
    CAP_SCALE=10
    echo '{"part": "install", "rc": 0, "seconds": 0, "cap": 0, "note": "skipped (dry run)"}' \
        >> "$OUTDIR/parts.jsonl"
    OPS_ARGS=(--device cpu --small --dtype fp32 bf16)
    COMPILE_WORKERS=2 TEST_WORKERS=1
else
    # 0, not unset: tests/conftest.py turns the interpreter on unless the variable is set.
    export TRITON_INTERPRET=0
    CAP_SCALE=1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
        --format=csv 2>&1 | tee -a "$LOG"
    if [ -d .whl ]; then
        export PYTHONPATH="$SITE"
        part install "${CAP_INSTALL:-40}" bash "${BASH_SOURCE[0]}" --install
    elif "$PY" -c 'import mmspatialmamba.ops, mmdet.apis, mmseg.apis' 2>/dev/null; then
        echo '{"part": "install", "rc": 0, "seconds": 0, "cap": 0,' \
             '"note": "skipped (installed)"}' >> "$OUTDIR/parts.jsonl"
    else
        die "$PY cannot import mmspatialmamba, mmdet and mmseg, and there is no .whl/:" \
            "install them (README), or run --prepare and carry .whl/"
    fi
    OPS_ARGS=(--dtype fp32 bf16 fp16)
    COMPILE_WORKERS=$(($(nproc) > 3 ? $(nproc) - 2 : 1)) TEST_WORKERS=6
fi
CHECK=("$PY" benchmarks/gpu_check.py)
part compile "${CAP_COMPILE:-80}" env TRITON_INTERPRET=0 "${CHECK[@]}" compile "$OUTDIR" \
    --workers "$COMPILE_WORKERS" $DRY_RUN
part tests "${CAP_TESTS:-150}" "${CHECK[@]}" tests "$OUTDIR" --workers "$TEST_WORKERS" \
    --timeout 100 $DRY_RUN
part sanitizer "${CAP_SANITIZER:-50}" "${CHECK[@]}" sanitizer "$OUTDIR" \
    --timeout $(((${CAP_SANITIZER:-50} - 5) * CAP_SCALE)) $DRY_RUN
part determinism "${CAP_DETERMINISM:-40}" "${CHECK[@]}" determinism "$OUTDIR" \
    --workers "$((TEST_WORKERS > 4 ? 4 : TEST_WORKERS))" --timeout 35 $DRY_RUN
part ops "${CAP_OPS:-60}" "$PY" benchmarks/bench_ops.py "${OPS_ARGS[@]}" \
    --json "$OUTDIR/ops.json"
part backbone "${CAP_BACKBONE:-50}" "${CHECK[@]}" backbone "$OUTDIR" $DRY_RUN
part maskrcnn "${CAP_MASKRCNN:-70}" "${CHECK[@]}" maskrcnn "$OUTDIR" $DRY_RUN
"${CHECK[@]}" report "$OUTDIR"
exit $FAILED
