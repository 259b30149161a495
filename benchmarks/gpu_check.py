"""The Python parts of ``benchmarks/gpu_check.sh``: each writes a JSON file into OUTDIR.

Subcommands (the shell script runs each under its own time cap, in this order):

* ``tests OUTDIR``: the ``cuda``-marked tests (``pytest -m cuda tests``), in-process, with
  each test's outcome written to ``tests.json`` as soon as it is known.
* ``backbone OUTDIR``: the T backbone at 224, batch 128, inference and training, fp32 and bf16
  autocast, on the Triton kernels -> ``backbone.json``.
* ``maskrcnn OUTDIR``: Mask R-CNN with our T backbone
  (``configs/maskrcnn_spatialmamba_t_coco.py``) beside mmdet's own Swin-T Mask R-CNN (its
  config ``mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``), built in the same process
  with random weights, on 2 synthetic images of 800x1344 with synthetic targets: a training
  step and inference, fp32 and fp16 autocast (mmcv's RoIAlign has no bfloat16 kernel) ->
  ``maskrcnn.json``.
* ``report OUTDIR``: every part's JSON and the status lines of ``parts.jsonl`` (written by
  the shell script) as one markdown file, ``gpu_check.md``, also printed.

The op benchmark is ``benchmarks/bench_ops.py`` itself. Timing and peak memory come from
:mod:`mmspatialmamba.analysis.timing`. ``--dry-run`` runs the same code at tiny sizes on the
CPU (see ``SIZES``), so CI notices when a part breaks; its numbers mean nothing. There the op
benchmark runs the Triton kernels interpreted (``TRITON_INTERPRET=1``, set by the shell
script) and the models run on the PyTorch ops.

Every row is written to the JSON as soon as it is measured, so a part stopped by its time cap
still reports what it finished.
"""
import argparse
import json
import os
import sys
import tempfile
import traceback
from typing import Any, Callable, Dict, List, Optional

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

# The real run, and the dry run on the CPU. The dry run's models use the PyTorch ops (under
# the interpreter one forward of a 4-block backbone at 64x64 takes tens of seconds, and the
# op part already runs every kernel interpreted), and its Mask R-CNN runs in float32 only
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
PARTS = ('install', 'tests', 'ops-fp32', 'ops-bf16', 'backbone', 'maskrcnn')


class JsonRows:
    """A JSON file ``{'device': ..., **meta, 'rows': [...]}`` rewritten after every row."""

    def __init__(self, path: str, **meta: Any) -> None:
        self.path, self.meta, self.rows = path, meta, []

    def add(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)
        with open(self.path, 'w') as f:
            json.dump(dict(self.meta, rows=self.rows), f, indent=1)


def device_info(device: str) -> Dict[str, str]:
    import torch
    import triton
    name = torch.cuda.get_device_name() if device == 'cuda' else 'cpu (dry run)'
    return dict(device=name, torch=torch.__version__, triton=triton.__version__)


class _TestRecorder:
    """pytest plugin: writes every test's outcome to a JSON file as soon as it is known."""

    def __init__(self, out: JsonRows) -> None:
        self.out = out

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == 'call' or report.outcome != 'passed':
            message = str(report.longrepr).splitlines()[-1] if report.longrepr else ''
            self.out.add(dict(test=report.nodeid, when=report.when, outcome=report.outcome,
                              seconds=round(report.duration, 3), message=message[:300]))


def run_tests(outdir: str) -> int:
    """The ``cuda``-marked tests; without a GPU (the dry run) they are collected and skipped."""
    import pytest
    out = JsonRows(os.path.join(outdir, 'tests.json'), command='pytest -m cuda tests -q')
    return int(pytest.main(['-m', 'cuda', 'tests', '-q', '-p', 'no:cacheprovider'],
                           plugins=[_TestRecorder(out)]))


def _error_row(out: JsonRows, model: str, amp: Optional[str], mode: str, err: Exception) -> int:
    """Record a failed measurement (its traceback goes to the log); returns 1 (one failure).

    The part carries on with its other rows and exits non-zero at the end, so one failing
    kernel or model does not hide the numbers of the rest.
    """
    traceback.print_exc()
    out.add(dict(model=model, amp=amp, mode=mode, error=f'{type(err).__name__}: {err}'[:500]))
    return 1


def _time_steps(out: JsonRows, label: str, backend: str, model: Any, task: str, images: Any,
                samples: Optional[List[Any]], amps: List[Optional[str]], warmup: int,
                iters: int, release: Callable[[Optional[str], str], Dict[str, Any]]) -> int:
    """Time inference and a training step of ``model`` for each autocast dtype in ``amps``.

    Returns:
        The number of measurements that raised (each recorded as an error row).
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
            except Exception as err:  # noqa: BLE001  (recorded; the part exits non-zero)
                failures += _error_row(out, label, amp, mode, err)
                continue
            row = Measurement(label, device, backend, amp, False, mode, batch, (height, width),
                              batch / timing.median_s, timing.median_s * 1e3,
                              timing.peak_mem_mib, timing.peak_mem_kind)
            out.add(dict(asdict(row), **release(amp, mode)))
            print(f'{label:<40}{amp or "fp32":>6}{mode:>10}{row.latency_ms:>10.1f} ms'
                  f'{row.images_per_s:>10.1f} img/s{row.peak_mem_mib:>9.0f} MiB', flush=True)
    return failures


def run_backbone(outdir: str, dry_run: bool) -> int:
    """T backbone: inference and training, fp32 and bf16 autocast, Triton kernels."""
    import torch

    from mmspatialmamba.models import SpatialMamba
    sizes = SIZES[dry_run]
    device, backend = sizes['device'], sizes['backend']
    out = JsonRows(os.path.join(outdir, 'backbone.json'), **device_info(device),
                   warmup=sizes['backbone_warmup'], iters=sizes['backbone_iters'])
    model = SpatialMamba(arch=sizes['backbone_arch'], backend=backend).to(device)
    images = torch.randn(sizes['backbone_batch'], 3, *sizes['backbone_shape'], device=device)

    def release(amp: Optional[str], mode: str) -> Dict[str, Any]:
        images_per_s, peak_gib = RELEASE_BACKBONE[amp, mode]
        return dict(release_images_per_s=images_per_s,
                    release_peak_mib=None if peak_gib is None else peak_gib * 1024)

    label = 'SpatialMamba-T' if sizes['backbone_arch'] == 'tiny' else 'SpatialMamba(custom)'
    return _time_steps(out, label, backend, model, 'backbone', images, None, [None, 'bf16'],
                       sizes['backbone_warmup'], sizes['backbone_iters'], release)


def run_maskrcnn(outdir: str, dry_run: bool) -> int:
    """Mask R-CNN, our T backbone beside mmdet's Swin-T: train step and inference."""
    from mmspatialmamba.analysis.builders import build_from_config, synthetic_batch
    sizes = SIZES[dry_run]
    device = sizes['device']
    out = JsonRows(os.path.join(outdir, 'maskrcnn.json'), **device_info(device),
                   warmup=sizes['det_warmup'], iters=sizes['det_iters'])
    images, samples = synthetic_batch('detection', sizes['det_batch'], *sizes['det_shape'],
                                      device)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, ours, base in DETECTORS:
            # A config inheriting the real one; mmdet's is found as ours find it (mmdet::).
            config = os.path.join(tmp, 'detector.py')
            base = base if base.startswith('mmdet::') else os.path.abspath(base)
            override = dict(DRY_RUN_DETECTOR, **(DRY_RUN_OURS if ours else {}))
            with open(config, 'w') as f:
                f.write(f'_base_ = {base!r}\n' + (f'model = {override!r}\n' if dry_run else ''))
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


def _fmt(value: Any, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def _load(outdir: str, name: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(outdir, name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _model_row(r: Dict[str, Any]) -> str:
    """One markdown row of a backbone or Mask R-CNN measurement (or of its error)."""
    head = f'| {r["model"]} | {r["amp"] or "fp32"} | {r["mode"]} |'
    if 'error' in r:
        return f'{head} ERROR: {r["error"]} | | | | | | | |'
    return (f'{head} {r["batch"]} | {r["shape"][0]}x{r["shape"][1]} | {r["latency_ms"]:.1f} | '
            f'{r["images_per_s"]:.1f} | {r["peak_mem_mib"]:.0f} | '
            f'{_fmt(r.get("release_latency_ms"), ".0f")} | '
            f'{_fmt(r.get("release_images_per_s"), ".0f")} | '
            f'{_fmt(r.get("release_peak_mib"), ".0f")} |')


def report(outdir: str) -> str:
    """The markdown summary of every part found in ``outdir``; written to gpu_check.md."""
    lines = ['# GPU check', '']
    status = {}
    if os.path.isfile(os.path.join(outdir, 'parts.jsonl')):
        with open(os.path.join(outdir, 'parts.jsonl')) as f:
            status = {p['part']: p for p in map(json.loads, f)}
    lines += ['| part | result | seconds | cap s |', '|---|---|---|---|']
    for part in PARTS:
        p = status.get(part)
        if p is None:
            lines.append(f'| {part} | not run | - | - |')
            continue
        result = p.get('note') or {0: 'ok', 124: 'TIMED OUT (cap)', 137: 'KILLED after cap'}.get(
            p['rc'], f'FAILED (exit {p["rc"]})')
        lines.append(f'| {part} | {result} | {p["seconds"]} | {p["cap"]} |')

    tests = _load(outdir, 'tests.json')
    lines += ['', '## cuda-marked tests', '']
    if tests is None:
        lines.append('no result (tests.json missing)')
    else:
        counts: Dict[str, int] = {}
        for r in tests['rows']:
            counts[r['outcome']] = counts.get(r['outcome'], 0) + 1
        lines.append(', '.join(f'{n} {k}' for k, n in sorted(counts.items())) or 'no tests')
        lines += [f'- {r["outcome"].upper()} {r["test"]} ({r["when"]}): {r["message"]}'
                  for r in tests['rows'] if r['outcome'] == 'failed']

    lines += ['', '## Ops (bench_ops.py; release: official kernels, H100)', '',
              '| dtype | shape (dims) | backend | fwd ms | fwd+bwd ms | release fwd | '
              'release f+b | fwd x floor | peak MiB |', '|---|---|---|---|---|---|---|---|---|']
    for dtype in ('fp32', 'bf16'):
        ops = _load(outdir, f'ops-{dtype}.json')
        if ops is None:
            lines.append(f'| {dtype} | no result | | | | | | | |')
            continue
        lines += [f'| {dtype} | {r["shape"]} {tuple(r["dims"])} | {r["backend"]} | '
                  f'{_fmt(r["fwd_ms"], ".3f")} | {_fmt(r["fwd_bwd_ms"], ".3f")} | '
                  f'{_fmt(r["release_fwd_ms"], ".3f")} | {_fmt(r["release_fwd_bwd_ms"], ".3f")} | '
                  f'{_fmt(r.get("fwd_x_floor"), ".3g")} | {_fmt(r["peak_mib"], ".0f")} |'
                  for r in ops['rows']]

    for name, title in (('backbone', 'T backbone'), ('maskrcnn', 'Mask R-CNN')):
        data = _load(outdir, f'{name}.json')
        lines += ['', f'## {title}', '']
        if data is None:
            lines.append(f'no result ({name}.json missing)')
            continue
        kinds = {r['peak_mem_kind'] for r in data['rows'] if 'peak_mem_kind' in r}
        lines += [f'{data["device"]}; torch {data["torch"]}; triton {data["triton"]}; median of '
                  f'{data["iters"]} after {data["warmup"]} warm-up; peak = '
                  f'{", ".join(sorted(kinds)) or "-"}', '',
                  '| model | amp | mode | batch | HxW | ms/batch | img/s | peak MiB | '
                  'release ms | release img/s | release peak MiB |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        lines += [_model_row(r) for r in data['rows']]
    text = '\n'.join(lines) + '\n'
    with open(os.path.join(outdir, 'gpu_check.md'), 'w') as f:
        f.write(text)
    return text


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('part', choices=['tests', 'backbone', 'maskrcnn', 'report'])
    parser.add_argument('outdir')
    parser.add_argument('--dry-run', action='store_true',
                        help='tiny sizes on the CPU, kernels interpreted (for CI)')
    args = parser.parse_args(argv)
    if not os.path.isdir(args.outdir):
        parser.error(f'OUTDIR {args.outdir!r} is not a directory; create it first')
    if args.part == 'report':
        print(report(args.outdir))
        return 0
    if args.part == 'tests':
        return run_tests(args.outdir)
    import torch
    if not args.dry_run and not torch.cuda.is_available():
        parser.error('no CUDA device: the timings need a GPU; pass --dry-run for the CPU '
                     'smoke run')
    if not args.dry_run:
        torch.backends.cudnn.benchmark = True
    run = {'backbone': run_backbone, 'maskrcnn': run_maskrcnn}[args.part]
    return 1 if run(args.outdir, args.dry_run) else 0


if __name__ == '__main__':
    sys.exit(main())
