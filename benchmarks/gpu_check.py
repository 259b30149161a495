"""The Python parts of ``benchmarks/gpu_check.sh``: each records its results in OUTDIR.

Subcommands, in the order the shell script runs them (the verdict first, then speed):

* ``compile OUTDIR``: prints the Triton, torch and CUDA versions and the GPU; records every
  op call the check makes (:func:`warm_cases`) on fake CUDA tensors, counts their Triton
  kernel variants and compiles them all, in parallel processes, into Triton's cache, so the
  parts after it find every kernel compiled (``mmspatialmamba.ops.compile_check.variants``).
* ``tests OUTDIR``: the correctness tests, through pytest (``pytest-xdist`` and
  ``pytest-timeout`` where installed): every ``cuda``-marked test of the suite (but the op
  tests' ``test_cuda_triton_matches_torch``, which the GPU check's own cover at the models'
  real shapes) and the GPU check's own, ``tests/benchmarks/test_gpu_correctness.py`` (Triton
  against the PyTorch path at the models' shapes, per op and for the backbone, and against
  the float64 oracle on the small calls).
* ``sanitizer OUTDIR``: ``compute-sanitizer`` memcheck, racecheck and initcheck, side by side,
  each over ``calls`` (tiny op calls at GPU launch sizes, :func:`small_cases`). Where
  the tool is missing or refuses the device, the part says so and passes nothing off as
  checked.
* ``calls OUTDIR``: those calls, forward and backward on the Triton kernels, results finite.
* ``determinism OUTDIR``: ``tests/benchmarks/test_gpu_determinism.py`` (each op twice, bit
  for bit).
* ``backbone OUTDIR``: the T backbone at 224, batch 128, inference and training, fp32 and bf16
  autocast, on the Triton kernels; every result finite.
* ``maskrcnn OUTDIR``: Mask R-CNN with our T backbone beside mmdet's own Swin-T Mask R-CNN
  (``mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``), random weights, 2 synthetic images
  of 800x1344: a training step and inference, fp32 and fp16 autocast (mmcv's RoIAlign has no
  bfloat16 kernel); every result finite.
* ``report OUTDIR``: ``gpu_check.md``, its first line the VERDICT (each part's outcome), then
  every part's table; also printed. The shell script writes it again after every part, so a
  run cut short still has one.

The op benchmark is ``benchmarks/bench_ops.py`` itself. Results go to ``results.json`` (one
entry per part, rewritten after every row, so a part stopped by its time cap keeps what it
finished). ``--dry-run`` runs every part at tiny sizes on the CPU, the kernels interpreted
(``TRITON_INTERPRET=1``, set by the shell script) except in ``compile``, which compiles one
dry call's kernels for sm_90 with Triton's real compiler and prints how many variants the
real run compiles; CI runs it, so the script cannot rot. Its numbers mean nothing.
"""
import argparse
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = 'results.json'
DTYPES = ('fp32', 'bf16', 'fp16')
# Parts as the shell script runs them; the first five give the verdict.
VERDICT_PARTS = ('install', 'compile', 'tests', 'sanitizer', 'determinism')
PARTS = VERDICT_PARTS + ('ops', 'backbone', 'maskrcnn')
DRY_ENV = 'MMSM_GPU_CHECK'   # '=dry': the GPU check's tests take the dry plan, on the CPU

# The release's H100 numbers (docs/results.md): T backbone at 224, batch 128.
RELEASE_BACKBONE = {  # (amp, mode): (images/s, peak GiB)
    (None, 'inference'): (1282, None), ('bf16', 'inference'): (1652, None),
    (None, 'train'): (371, 40), ('bf16', 'train'): (436, 23)}
RELEASE_MASKRCNN_INFERENCE_MS = 65   # Mask R-CNN T, fp32, 2 images of 800x1344
DETECTORS = [  # label, whether the backbone is ours, config
    ('Mask R-CNN SpatialMamba-T (ours)', True, 'configs/maskrcnn_spatialmamba_t_coco.py'),
    ('Mask R-CNN Swin-T (mmdet)', False, 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py')]
# Dry run only, merged into the configs: fewer proposals and sampled RoIs (the RoI heads
# otherwise cost about a second per step on the CPU at any image size), and for ours a
# 4-block backbone.
DRY_RUN_DETECTOR = dict(
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=50),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(max_per_img=10)))
DRY_RUN_OURS = dict(backbone=dict(arch=dict(_delete_=True, dims=16, depths=[1, 1, 1, 1])),
                    neck=dict(in_channels=[16, 32, 64, 128]))

# The timing parts, real and dry. The dry run's models use the PyTorch ops (under the
# interpreter one forward of a 4-block backbone at 64x64 takes tens of seconds; the tests
# part already runs a small backbone on the kernels) and its Mask R-CNN runs in float32 only
# (mmcv's CPU NMS takes float32 alone; the fp16 step is tested in tests/analysis).
SIZES = {
    False: dict(device='cuda', backend='triton', backbone_arch='tiny', backbone_batch=128,
                backbone_shape=(224, 224), backbone_warmup=3, backbone_iters=10,
                det_batch=2, det_shape=(800, 1344), det_amps=[None, 'fp16'], det_warmup=3,
                det_iters=10),
    True: dict(device='cpu', backend='torch', backbone_arch={'dims': 16, 'depths': [1, 1, 1, 1]},
               backbone_batch=2, backbone_shape=(64, 64), backbone_warmup=0, backbone_iters=1,
               det_batch=2, det_shape=(64, 96), det_amps=[None], det_warmup=0, det_iters=1),
}


# ---------------------------------------------------------------- the plan: what is checked


def is_dry() -> bool:
    """Whether this process runs the dry plan (``MMSM_GPU_CHECK=dry``, set by the script)."""
    return os.environ.get(DRY_ENV) == 'dry'


def _model_calls() -> Any:
    """``mmspatialmamba.ops.compile_check.cases``, imported when a plan is asked for: the
    report runs where the package may not be installed."""
    from mmspatialmamba.ops.compile_check import cases
    return cases


def _cases(op: str, keys: Sequence[str], dtypes: Sequence[str] = DTYPES) -> list:
    calls = _model_calls()
    return [calls.Case(op, calls.SHAPES[k], d) for k in keys for d in dtypes]


def _dry_shapes() -> dict:
    shape = _model_calls().Shape
    return dict(map=shape('dry map', 2, 6, 5, 7), scan=shape('dry scan', 1, 5, 1, 40, 3))


def op_cases(dry: bool) -> list:
    """Triton against the PyTorch path, forward and backward, fp32, bf16 and fp16.

    Real: the model's op (``structure_aware_ssm``) at every shape of
    ``compile_check.cases.SHAPES`` (every stage of T and B in detection at 800x1344, batch 2
    and, chunked, batch 1; segmentation; classification at 224, batch 128 and 8); the scan
    and the fusion alone at T's detection stage 1 (batch 2 and 1), classification and
    segmentation stage 1 and detection stage 4.
    """
    case, alone = _model_calls().Case, ['det1', 'det1b1', 'cls', 'seg', 'det4']
    if dry:
        shapes = _dry_shapes()
        return ([case('sasf', shapes['map'], d) for d in DTYPES]
                + [case('scan', shapes['scan'], 'fp32'), case('fusion', shapes['map'], 'bf16')])
    return (_cases('sasf', list(_model_calls().SHAPES)) + _cases('scan', alone)
            + _cases('fusion', alone))


def determinism_cases(dry: bool) -> list:
    """Each op twice on the same inputs: outputs and gradients bit for bit. Real: the model's
    op where its launches differ most (chunked scan, many programs per map, the widest
    maps), in every dtype; the scan and the fusion alone in fp32."""
    if dry:
        return [_model_calls().Case('sasf', _dry_shapes()['map'], 'fp32')]
    return (_cases('sasf', ['det1b1', 'det1', 'cls', 'seg', 'B-det4'])
            + _cases('scan', ['det1b1', 'cls'], ['fp32']) + _cases('fusion', ['cls'], ['fp32']))


def small_cases(dry: bool) -> list:
    """Tiny calls at GPU launch sizes, which compute-sanitizer watches and the tests compare
    with the float64 oracle: the model's op on a map of several tiles, and chunked
    (L = 2,100 at D = 6: too few rows to fill a GPU); the scan alone chunked with N = 3
    states, D = 5 (padded lanes in the channel and state blocks); the fusion on a map of
    several tiles; channel counts not divisible by 4. Dry: the first call and the scan with
    N = 3 at the dry plan's length (the interpreter does not chunk)."""
    case, shape = _model_calls().Case, _model_calls().Shape
    small = shape('tiny', 1, 5, 7, 9)
    if dry:
        return [case('sasf', small, 'fp32'), case('scan', _dry_shapes()['scan'], 'fp32')]
    chunked, scan = shape('tiny chunked', 1, 6, 30, 70), shape('tiny chunked', 1, 5, 1, 2100, 3)
    return ([case('sasf', small, d) for d in ('fp32', 'bf16')]
            + [case('sasf', chunked, 'fp32'), case('fusion', shape('tiny', 1, 5, 13, 70), 'fp16')]
            + [case('scan', scan, d) for d in ('fp32', 'bf16')])


@dataclasses.dataclass(frozen=True)
class BackboneCase:
    """A backbone compared on both backends: ``arch`` (a name or a dict, as ``SpatialMamba``
    takes it), the stages it returns, ``batch`` images of ``hw``, the autocast dtype."""
    label: str
    arch: Any
    out_indices: Tuple[int, ...]
    batch: int
    hw: Tuple[int, int]
    amp: Optional[str]

    def __str__(self) -> str:
        return f'{self.label}-B{self.batch}-{self.amp or "fp32"}'


def backbone_cases(dry: bool) -> List[BackboneCase]:
    """Whole backbones, Triton against the PyTorch path, forward and backward. Real: T at 224
    batch 8 and at 800x1344 batch 2, fp32, bf16 and fp16 autocast. Dry: one block (under the
    interpreter a block's forward and backward costs seconds)."""
    if dry:
        return [BackboneCase('dry', dict(dims=4, depths=[1]), (0,), 2, (16, 16), None)]
    return [BackboneCase(label, 'tiny', (0, 1, 2, 3), batch, hw, amp)
            for label, batch, hw in (('T224', 8, (224, 224)), ('T800x1344', 2, (800, 1344)))
            for amp in (None, 'bf16', 'fp16')]


def warm_cases(dry: bool) -> list:
    """Every op call of the check, without repeats: what ``compile`` compiles first. The
    backbone and Mask R-CNN parts run the model's op at shapes of ``cases.SHAPES`` (T at 224
    batch 8 and 128, at 800x1344 batch 2), which :func:`op_cases` holds in every dtype;
    ``bench_ops.py`` times calls of :func:`op_cases` too. The dry run's parts need no compiled
    kernel (they run interpreted): its compile part compiles the first dry case's kernels,
    the same code on the CPU, and counts the real run's."""
    if dry:
        return op_cases(True)[:1]
    cases = op_cases(False) + determinism_cases(False) + small_cases(False)
    return list(dict.fromkeys(cases))


# ---------------------------------------------------------------- results


class JsonRows:
    """Rows of one part in ``OUTDIR/results.json`` (``{part: {**meta, 'rows': [...]}}``),
    the file rewritten after every row; other parts' entries are kept."""

    def __init__(self, outdir: str, part: str, **meta: Any) -> None:
        self.path, self.part, self.meta, self.rows = os.path.join(outdir, RESULTS), part, meta, []
        self._write()

    def add(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        data = load_results(os.path.dirname(self.path))
        data[self.part] = dict(self.meta, rows=self.rows)
        with open(self.path, 'w') as f:
            json.dump(data, f, indent=1, default=str)


def _read_json(path: str) -> Any:
    """The JSON in ``path`` (None when there is no such file)."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_results(outdir: str) -> Dict[str, Any]:
    """``results.json`` of ``outdir`` ({} when absent)."""
    results = _read_json(os.path.join(outdir, RESULTS))
    return {} if results is None else results


def device_info(device: str) -> Dict[str, str]:
    import torch
    import triton
    name = torch.cuda.get_device_name() if device == 'cuda' else 'cpu (dry run)'
    return dict(device=name, torch=torch.__version__, triton=triton.__version__,
                cuda=torch.version.cuda)


# ---------------------------------------------------------------- compile


def run_compile(outdir: str, dry: bool, workers: int) -> int:
    """Count and compile every kernel variant of :func:`warm_cases` (module docstring)."""
    import torch
    from mmspatialmamba.ops.compile_check.variants import compile_variants, record_variants
    capability = 90
    if not dry:
        major, minor = torch.cuda.get_device_capability()
        capability = 10 * major + minor
    info = device_info('cuda' if not dry else 'cpu')
    print(f'triton {info["triton"]}, torch {info["torch"]} (CUDA {info["cuda"]}), '
          f'{info["device"]}; compiling for sm_{capability} in {workers} processes', flush=True)
    out = JsonRows(outdir, 'compile', **info, capability=capability, workers=workers)
    if dry:
        launches, variants = record_variants(warm_cases(False), capability)
        print(f'the real run compiles {len(variants)} kernel variants '
              f'({launches} launches of {len(warm_cases(False))} op calls)', flush=True)
        out.meta['real_run_variants'] = len(variants)
    result = compile_variants(warm_cases(dry), capability, workers)
    out.add(dict(cases=len(warm_cases(dry)), variants=result.variants, kernels=result.kernels,
                 seconds=round(result.seconds, 1), failures=result.failures))
    print(f'compiled {result.variants} kernel variants ({result.kernels} distinct kernels) in '
          f'{result.seconds:.1f} s; {len(result.failures)} failed', flush=True)
    for label, error in result.failures:
        print(f'FAILED to compile: {label}: {error}', flush=True)
    return 1 if result.failures else 0


# ---------------------------------------------------------------- tests and determinism


class _TestRecorder:
    """pytest plugin: records every test's outcome (and the errors it measured, its
    ``user_properties``) as soon as it is known; under xdist the controller gets them all."""

    def __init__(self, out: JsonRows) -> None:
        self.out = out

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == 'call' or report.outcome != 'passed':
            message = str(report.longrepr).splitlines()[-1] if report.longrepr else ''
            self.out.add(dict(test=report.nodeid, when=report.when, outcome=report.outcome,
                              seconds=round(report.duration, 3), message=message[:300],
                              **dict(report.user_properties)))


def _plugin_options(workers: int, timeout_s: int) -> List[str]:
    """pytest-xdist's and pytest-timeout's options, for those installed (the GPU machine
    has both)."""
    import importlib.util
    options = []
    if workers > 1 and importlib.util.find_spec('xdist'):
        options += ['-n', str(workers)]
    if importlib.util.find_spec('pytest_timeout'):
        options += ['--timeout', str(timeout_s)]
    return options


# Not the op tests' older model-shape comparisons (test_cuda_triton_matches_torch, D = 64 at
# three shapes): test_op_triton_matches_torch runs them at the models' real shapes, and theirs
# are variants the compile part does not warm. Plain `pytest -m cuda` still runs them.
CORRECTNESS_ARGS = ['-m', 'cuda or gpu_check', 'tests',
                    '--ignore', 'tests/benchmarks/test_gpu_determinism.py',
                    '-k', 'not test_cuda_triton_matches_torch']
DETERMINISM_ARGS = ['tests/benchmarks/test_gpu_determinism.py']


def run_tests(outdir: str, part: str, args: List[str], workers: int, timeout_s: int) -> int:
    """pytest over ``args`` in ``ROOT``, each outcome recorded under ``part``."""
    import pytest
    options = _plugin_options(workers, timeout_s)
    command = ['-q', '-p', 'no:cacheprovider', *options, *args]
    out = JsonRows(outdir, part, command=shlex.join(['pytest', *command]))
    os.chdir(ROOT)
    return int(pytest.main(command, plugins=[_TestRecorder(out)]))


# ---------------------------------------------------------------- sanitizer


SANITIZER_TOOLS = ('memcheck', 'racecheck', 'initcheck')
OUR_KERNEL = re.compile(r'_(?:selective_scan|state_fusion)_\w*kernel')
# memcheck and initcheck end with 'ERROR SUMMARY: N errors', racecheck with
# 'RACECHECK SUMMARY: N hazards displayed (E errors, W warnings)'.
SUMMARY = re.compile(r'(?:ERROR SUMMARY: (\d+) error|RACECHECK SUMMARY: (\d+) hazard)')


def run_calls(dry: bool) -> int:
    """:func:`small_cases` forward and backward on the Triton kernels, every result
    finite; what compute-sanitizer watches."""
    import torch
    from mmspatialmamba.ops.compile_check.cases import CALLS, DTYPES as TORCH_DTYPES, random_leaf
    device = torch.device('cpu' if dry else 'cuda')
    torch.manual_seed(0)
    bad = 0
    for case in small_cases(dry):
        call = CALLS[case.op](case.shape, TORCH_DTYPES[case.dtype], random_leaf(device))
        out = call('triton')
        grads = torch.autograd.grad(out, list(call.leaves.values()), torch.randn_like(out))
        finite = all_finite((out, *grads))
        bad += not finite
        print(f'{case}: {"finite" if finite else "NOT FINITE"}', flush=True)
    if not dry:
        torch.cuda.synchronize()
    return 1 if bad else 0


def _sanitizer_executable() -> Optional[str]:
    return shutil.which('compute-sanitizer') or next(
        (p for p in ('/usr/local/cuda/bin/compute-sanitizer',) if os.path.isfile(p)), None)


def _error_blocks(log: str) -> List[List[str]]:
    """compute-sanitizer's reports as blocks of lines: each report starts with a line
    '========= <what>' and goes on with indented '=========     <where>' lines."""
    blocks: List[List[str]] = []
    for line in log.splitlines():
        if not line.startswith('========= '):
            continue
        body = line[len('========= '):]
        if body[:1] != ' ':
            blocks.append([body])
        elif blocks:
            blocks[-1].append(body.strip())
    return blocks


def _sanitizer_row(tool: str, rc: int, log: str, seconds: float) -> Dict[str, Any]:
    """One tool's outcome from its log: 'pass', 'FAIL' (a report naming one of our kernels,
    or the calls failed), or 'refused' (no error summary: the tool did not get to run them).
    Reports in other kernels (PyTorch's) are counted, not failed: the log has them."""
    summary = SUMMARY.search(log)
    row = dict(tool=tool, rc=rc, seconds=round(seconds, 1))
    if summary is None:
        tail = ' | '.join(log.strip().splitlines()[-3:])
        return dict(row, status='refused', note=f'no error summary: {tail}'[:400])
    ours = [b for b in _error_blocks(log) if any(OUR_KERNEL.search(line) for line in b)]
    row.update(errors=int(summary.group(1) or summary.group(2)), errors_in_our_kernels=len(ours),
               first=[' '.join(b[:2]) for b in ours[:3]])
    return dict(row, status='FAIL' if ours or rc else 'pass')


def run_sanitizer(outdir: str, dry: bool, timeout_s: int) -> int:
    """memcheck, racecheck and initcheck side by side over ``calls``; see the module doc."""
    out = JsonRows(outdir, 'sanitizer', tools=list(SANITIZER_TOOLS))
    exe = _sanitizer_executable()
    calls = [sys.executable, os.path.abspath(__file__), 'calls', outdir] + (
        ['--dry-run'] if dry else [])
    if exe is None:
        note = 'compute-sanitizer not found on PATH or in /usr/local/cuda/bin'
        print(f'{note}; the calls alone, without it:', flush=True)
        rc = subprocess.run(calls).returncode
        out.add(dict(tool='all', status='not run', note=note, calls_rc=rc))
        return 1 if rc else 0
    # Every tensor its own allocation, so an access past a tensor is past an allocation.
    env = dict(os.environ, PYTORCH_NO_CUDA_MEMORY_CACHING='1')
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tool in SANITIZER_TOOLS:
            log = open(os.path.join(tmp, tool), 'w+')
            runs[tool] = (subprocess.Popen([exe, '--tool', tool, '--print-limit', '20', *calls],
                                           stdout=log, stderr=subprocess.STDOUT, env=env),
                          log, time.time())
        failed = 0
        for tool, (proc, log, start) in runs.items():
            try:
                rc = proc.wait(timeout=max(1.0, timeout_s - (time.time() - start)))
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            log.seek(0)
            text = log.read()
            print(f'--- compute-sanitizer --tool {tool} (exit {rc})\n{text[-3000:]}', flush=True)
            row = _sanitizer_row(tool, rc, text, time.time() - start)
            out.add(row)
            failed += row['status'] == 'FAIL'
    return 1 if failed else 0


# ---------------------------------------------------------------- timing parts


def _error_row(out: JsonRows, model: str, amp: Optional[str], mode: str, err: Exception) -> int:
    """Record a failed measurement (its traceback goes to the log); returns 1 (one failure).

    The part carries on with its other rows and exits non-zero at the end, so one failing
    kernel or model does not hide the numbers of the rest.
    """
    traceback.print_exc()
    out.add(dict(model=model, amp=amp, mode=mode, error=f'{type(err).__name__}: {err}'[:500]))
    return 1


def all_finite(result: Any) -> bool:
    """Whether every floating tensor in ``result`` is finite: tensors, lists, tuples, dicts
    and mmdet's data samples (their predicted instances)."""
    import torch
    if isinstance(result, torch.Tensor):
        return not result.is_floating_point() or bool(torch.isfinite(result).all())
    if isinstance(result, (list, tuple)):
        return all(all_finite(r) for r in result)
    if isinstance(result, dict):
        return all(all_finite(r) for r in result.values())
    if hasattr(result, 'pred_instances'):
        return all_finite(list(result.pred_instances.values()))
    return True


def _time_steps(out: JsonRows, label: str, backend: str, model: Any, task: str, images: Any,
                samples: Optional[List[Any]], amps: List[Optional[str]], warmup: int,
                iters: int, release: Callable[[Optional[str], str], Dict[str, Any]]) -> int:
    """Time inference and a training step of ``model`` for each autocast dtype in ``amps``,
    then check one more call's result is finite.

    Returns:
        The number of measurements that raised or gave non-finite results (each recorded).
    """
    from dataclasses import asdict

    from mmspatialmamba.analysis.timing import Measurement, measure, step_functions
    device = images.device.type
    batch, height, width = images.shape[0], images.shape[2], images.shape[3]
    failures = 0
    for amp in amps:
        fns = step_functions(model, task, images, samples, amp=amp)
        for mode in ('inference', 'train'):
            model.train(mode == 'train')
            try:
                timing = measure(fns[mode], device, warmup, iters)
                finite = all_finite(fns[mode]())
            except Exception as err:  # noqa: BLE001  (recorded; the part exits non-zero)
                failures += _error_row(out, label, amp, mode, err)
                continue
            row = Measurement(label, device, backend, amp, False, mode, batch, (height, width),
                              batch / timing.median_s, timing.median_s * 1e3,
                              timing.peak_mem_mib, timing.peak_mem_kind)
            out.add(dict(asdict(row), finite=finite, **release(amp, mode)))
            failures += not finite
            print(f'{label:<40}{amp or "fp32":>6}{mode:>10}{row.latency_ms:>10.1f} ms'
                  f'{row.images_per_s:>10.1f} img/s{row.peak_mem_mib:>9.0f} MiB'
                  f'{"" if finite else "  NOT FINITE"}', flush=True)
    return failures


def run_backbone(outdir: str, dry: bool) -> int:
    """T backbone: inference and training, fp32 and bf16 autocast, Triton kernels."""
    import torch

    from mmspatialmamba.models import SpatialMamba
    sizes = SIZES[dry]
    device, backend = sizes['device'], sizes['backend']
    out = JsonRows(outdir, 'backbone', **device_info(device), warmup=sizes['backbone_warmup'],
                   iters=sizes['backbone_iters'])
    model = SpatialMamba(arch=sizes['backbone_arch'], backend=backend).to(device)
    images = torch.randn(sizes['backbone_batch'], 3, *sizes['backbone_shape'], device=device)

    def release(amp: Optional[str], mode: str) -> Dict[str, Any]:
        images_per_s, peak_gib = RELEASE_BACKBONE[amp, mode]
        return dict(release_images_per_s=images_per_s,
                    release_peak_mib=None if peak_gib is None else peak_gib * 1024)

    label = 'SpatialMamba-T' if sizes['backbone_arch'] == 'tiny' else 'SpatialMamba(custom)'
    return _time_steps(out, label, backend, model, 'backbone', images, None, [None, 'bf16'],
                       sizes['backbone_warmup'], sizes['backbone_iters'], release)


def run_maskrcnn(outdir: str, dry: bool) -> int:
    """Mask R-CNN, our T backbone beside mmdet's Swin-T: train step and inference."""
    from mmspatialmamba.analysis.builders import build_from_config, synthetic_batch
    sizes = SIZES[dry]
    device = sizes['device']
    out = JsonRows(outdir, 'maskrcnn', **device_info(device), warmup=sizes['det_warmup'],
                   iters=sizes['det_iters'])
    images, samples = synthetic_batch('detection', sizes['det_batch'], *sizes['det_shape'],
                                      device)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, ours, base in DETECTORS:
            # A config inheriting the real one; mmdet's is found as ours find it (mmdet::).
            config = os.path.join(tmp, 'detector.py')
            base = base if base.startswith('mmdet::') else os.path.join(ROOT, base)
            override = dict(DRY_RUN_DETECTOR, **(DRY_RUN_OURS if ours else {}))
            with open(config, 'w') as f:
                f.write(f'_base_ = {base!r}\n' + (f'model = {override!r}\n' if dry else ''))
            backend = sizes['backend'] if ours else None
            try:
                model = build_from_config(config, backend=backend)[0].to(device)
            except Exception as err:  # noqa: BLE001  (recorded; the part exits non-zero)
                failures += _error_row(out, label, None, 'build', err)
                continue

            def release(amp: Optional[str], mode: str) -> Dict[str, Any]:
                known = ours and amp is None and mode == 'inference'
                return dict(release_latency_ms=RELEASE_MASKRCNN_INFERENCE_MS if known else None)

            failures += _time_steps(out, label, backend or '-', model, 'detection', images,
                                    samples, sizes['det_amps'], sizes['det_warmup'],
                                    sizes['det_iters'], release)
            del model
    return failures


# ---------------------------------------------------------------- report


def _fmt(value: Any, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def _part_status(outdir: str) -> Dict[str, Dict[str, Any]]:
    path = os.path.join(outdir, 'parts.jsonl')
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return {p['part']: p for p in map(json.loads, f)}


def _outcome(part: str, status: Optional[Dict[str, Any]], results: Dict[str, Any]) -> str:
    """One part's outcome for the verdict: pass, FAIL, TIMED OUT, not run (why), skipped."""
    if status is None:
        return 'not run'
    if status.get('note'):
        return status['note']
    if status['rc'] in (124, 137):
        return 'TIMED OUT'
    if part == 'sanitizer':
        rows = results.get('sanitizer', {}).get('rows', [])
        skipped = [r for r in rows if r['status'] in ('not run', 'refused')]
        if status['rc'] == 0 and skipped:
            return f'not run ({skipped[0].get("note", "")[:80]})'
    if part in ('tests', 'determinism') and status['rc'] == 0:
        rows = results.get(part, {}).get('rows', [])
        if not any(r['outcome'] == 'passed' for r in rows):
            return 'FAIL (no test ran)'
    return 'pass' if status['rc'] == 0 else f'FAIL (exit {status["rc"]})'


def verdict(outdir: str) -> str:
    """The one-line VERDICT: PASS when every verdict part passed (a sanitizer the machine
    does not allow is named, not counted), FAIL when one failed or timed out, INCOMPLETE
    when one did not run; then each part's outcome."""
    status, results = _part_status(outdir), load_results(outdir)
    outcomes = {p: _outcome(p, status.get(p), results) for p in PARTS}
    checked = [outcomes[p] for p in VERDICT_PARTS if p != 'install']
    if any(o.startswith(('FAIL', 'TIMED OUT')) for o in checked):
        overall = 'FAIL'
    elif any(o == 'not run' for o in checked):
        overall = 'INCOMPLETE'
    else:
        overall = 'PASS'
    verdict_parts = '; '.join(f'{p} {outcomes[p]}' for p in VERDICT_PARTS)
    speed = ', '.join(f'{p} {outcomes[p]}' for p in PARTS if p not in VERDICT_PARTS)
    return f'VERDICT: {overall}: {verdict_parts} | speed: {speed}'


def _tests_section(results: Dict[str, Any], part: str, title: str) -> List[str]:
    lines = ['', f'## {title}', '']
    data = results.get(part)
    if data is None:
        return lines + ['no result']
    counts: Dict[str, int] = {}
    for r in data['rows']:
        counts[r['outcome']] = counts.get(r['outcome'], 0) + 1
    lines += [f'`{data["command"]}`: ' + (', '.join(f'{n} {k}' for k, n in sorted(counts.items()))
                                          or 'no tests')]
    lines += [f'- {r["outcome"].upper()} {r["test"]} ({r["when"]}): {r["message"]}'
              for r in data['rows'] if r['outcome'] == 'failed']
    measured = [r for r in data['rows'] if 'error_ratio' in r]
    if measured:
        worst = max(measured, key=lambda r: r['error_ratio'])
        lines.append(f'- largest error against its tolerance ({worst["error_ratio"]:.2g} of it):'
                     f' {worst["test"]}: {worst["worst"]}')
    return lines


def _model_row(r: Dict[str, Any]) -> str:
    """One markdown row of a backbone or Mask R-CNN measurement (or of its error)."""
    head = f'| {r["model"]} | {r["amp"] or "fp32"} | {r["mode"]} |'
    if 'error' in r:
        return f'{head} ERROR: {r["error"]} | | | | | | | | |'
    return (f'{head} {r["batch"]} | {r["shape"][0]}x{r["shape"][1]} | {r["latency_ms"]:.1f} | '
            f'{r["images_per_s"]:.1f} | {r["peak_mem_mib"]:.0f} | '
            f'{"yes" if r["finite"] else "NO"} | '
            f'{_fmt(r.get("release_latency_ms"), ".0f")} | '
            f'{_fmt(r.get("release_images_per_s"), ".0f")} | '
            f'{_fmt(r.get("release_peak_mib"), ".0f")} |')


def report(outdir: str) -> str:
    """The markdown summary of every part found in ``outdir``; written to gpu_check.md."""
    status, results = _part_status(outdir), load_results(outdir)
    lines = [verdict(outdir), '', '# GPU check', '', '| part | outcome | seconds | cap s | '
             'kernels compiled during the part |', '|---|---|---|---|---|']
    for part in PARTS:
        p = status.get(part)
        lines.append(f'| {part} | {_outcome(part, p, results)} | '
                     + (f'{p["seconds"]} | {p["cap"]} | {p.get("compiled", "-")} |' if p else
                        '- | - | - |'))

    compiled = results.get('compile')
    lines += ['', '## Compile', '']
    if compiled is None:
        lines.append('no result')
    else:
        lines.append(f'{compiled["device"]}; triton {compiled["triton"]}, torch '
                     f'{compiled["torch"]}, CUDA {compiled["cuda"]}; sm_{compiled["capability"]}'
                     f', {compiled["workers"]} processes')
        if 'real_run_variants' in compiled:
            lines.append(f'- the real run compiles {compiled["real_run_variants"]} kernel '
                         'variants')
        for r in compiled['rows']:
            lines.append(f'- op calls: {r["cases"]}; {r["variants"]} kernel variants, '
                         f'{r["kernels"]} distinct kernels, {r["seconds"]} s, '
                         f'{len(r["failures"])} failed')
            lines += [f'  - FAILED {label}: {error}' for label, error in r['failures']]

    lines += _tests_section(results, 'tests', 'Correctness (Triton against the PyTorch path '
                                               'and float64; pytest)')
    lines += ['', '## compute-sanitizer', '']
    for r in results.get('sanitizer', {}).get('rows', []) or [dict(tool='-', status='no result')]:
        detail = r.get('note') or (f'{r.get("errors", "-")} errors, '
                                   f'{r.get("errors_in_our_kernels", "-")} in our kernels'
                                   + (f': {"; ".join(r["first"])}' if r.get('first') else ''))
        lines.append(f'- {r["tool"]}: {r["status"]} ({detail})')
    lines += _tests_section(results, 'determinism', 'Determinism (each op twice, bit for bit)')

    ops = _read_json(os.path.join(outdir, 'ops.json'))
    lines += ['', '## Ops (bench_ops.py; release: official kernels, H100)', '',
              '| dtype | shape (dims) | backend | fwd ms | fwd+bwd ms | release fwd | '
              'release f+b | fwd x floor | peak MiB | finite | rel. err. vs torch |',
              '|---|---|---|---|---|---|---|---|---|---|---|']
    if ops is None:
        lines.append('| no result | | | | | | | | | | |')
    else:
        lines += [f'| {r["dtype"]} | {r["shape"]} {tuple(r["dims"])} | {r["backend"]} | '
                  f'{_fmt(r["fwd_ms"], ".3f")} | {_fmt(r["fwd_bwd_ms"], ".3f")} | '
                  f'{_fmt(r["release_fwd_ms"], ".3f")} | {_fmt(r["release_fwd_bwd_ms"], ".3f")} | '
                  f'{_fmt(r.get("fwd_x_floor"), ".3g")} | {_fmt(r["peak_mib"], ".0f")} | '
                  f'{"yes" if r["finite"] else "NO"} | {_fmt(r.get("rel_err_vs_torch"), ".2g")} |'
                  for r in ops['rows']]

    for name, title in (('backbone', 'T backbone'), ('maskrcnn', 'Mask R-CNN')):
        data = results.get(name)
        lines += ['', f'## {title}', '']
        if data is None:
            lines.append('no result')
            continue
        kinds = {r['peak_mem_kind'] for r in data['rows'] if 'peak_mem_kind' in r}
        lines += [f'{data["device"]}; torch {data["torch"]}; triton {data["triton"]}; median of '
                  f'{data["iters"]} after {data["warmup"]} warm-up; peak = '
                  f'{", ".join(sorted(kinds)) or "-"}', '',
                  '| model | amp | mode | batch | HxW | ms/batch | img/s | peak MiB | finite | '
                  'release ms | release img/s | release peak MiB |',
                  '|---|---|---|---|---|---|---|---|---|---|---|---|']
        lines += [_model_row(r) for r in data['rows']]
    text = '\n'.join(lines) + '\n'
    with open(os.path.join(outdir, 'gpu_check.md'), 'w') as f:
        f.write(text)
    return text


# ---------------------------------------------------------------- command line


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('part', choices=['compile', 'tests', 'sanitizer', 'calls',
                                         'determinism', 'backbone', 'maskrcnn', 'report'])
    parser.add_argument('outdir')
    parser.add_argument('--dry-run', action='store_true',
                        help='tiny sizes on the CPU, kernels interpreted (for CI)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes for compile, tests and determinism (default 1)')
    parser.add_argument('--timeout', type=int, default=300,
                        help='seconds for one test (pytest-timeout) or one sanitizer tool')
    args = parser.parse_args(argv)
    if not os.path.isdir(args.outdir):
        parser.error(f'OUTDIR {args.outdir!r} is not a directory; create it first')
    outdir = os.path.abspath(args.outdir)
    if args.part == 'report':
        print(report(outdir))
        return 0
    if args.dry_run != is_dry():
        parser.error(f'--dry-run and {DRY_ENV}=dry go together (the tests read the variable); '
                     'run the parts through benchmarks/gpu_check.sh')
    if args.part == 'tests':
        return run_tests(outdir, 'tests', CORRECTNESS_ARGS, args.workers, args.timeout)
    if args.part == 'determinism':
        return run_tests(outdir, 'determinism', DETERMINISM_ARGS, args.workers, args.timeout)
    if args.part == 'compile':
        return run_compile(outdir, args.dry_run, args.workers)
    if args.part == 'sanitizer':
        return run_sanitizer(outdir, args.dry_run, args.timeout)
    import torch
    if not args.dry_run and not torch.cuda.is_available():
        parser.error('no CUDA device: this part needs a GPU; pass --dry-run for the CPU '
                     'smoke run')
    if args.part == 'calls':
        return run_calls(args.dry_run)
    torch.backends.cudnn.benchmark = not args.dry_run
    run = {'backbone': run_backbone, 'maskrcnn': run_maskrcnn}[args.part]
    return 1 if run(outdir, args.dry_run) else 0


if __name__ == '__main__':
    sys.exit(main())
