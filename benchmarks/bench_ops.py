"""Benchmark the SASF core (scan + fusion + observation, docs/model.md steps 5-7) and the scan
alone, and check that each result is finite and agrees with the PyTorch path.

At the four shapes of the release's speed table (measured on an H100, listed in
docs/results.md), for each ``--dtype`` and backend, prints forward and forward+backward median
times (:func:`mmspatialmamba.analysis.timing.kernel_time_ms`: ``triton.testing.do_bench`` on
CUDA), effective GB/s and the ratio to the byte floor, the peak memory of forward+backward,
whether the output and every gradient are finite, the largest relative L2 error of the
Triton results against the PyTorch ones, and the release's times beside (fp32). The inputs are
the model's (``mmspatialmamba.ops.compile_check.cases``: its layout, the step sizes training
starts from), the calls the compile check compiles and the GPU check tests. Backends, in the
same process:

* ``triton``: ``structure_aware_ssm(..., backend='triton')``, our kernels;
* ``torch``: ``structure_aware_ssm(..., backend='torch')``, the PyTorch composition that is
  also the release's structure: the reference scan, three depthwise ``F.conv2d`` (cuDNN on
  the GPU) with replicate padding, then the observation.

Byte floor and the release's times: ``mmspatialmamba.ops.compile_check.timing``
(``floor_bytes``: each (batch, D, L) tensor a pass must read or write once, at the 3 TB/s of
an H100; ``release_ms``). Effective GB/s = floor bytes / measured time. Exit status 1 when a
result is not finite or disagrees with the PyTorch path by more than :data:`AGREEMENT` (a
guard against gross errors in the timed calls; the GPU check's tests hold the tolerances).

Usage (GPU; ``benchmarks/gpu_check.sh`` runs all three dtypes)::

    python benchmarks/bench_ops.py --json benchmarks/results_h100.json
    python benchmarks/bench_ops.py --dtype bf16 fp16

Smoke test without a GPU (tiny shapes, Triton under the interpreter, wall-clock timing)::

    python benchmarks/bench_ops.py --device cpu --small
"""
import argparse
import itertools
import json
import os
import sys

SHAPES = {  # name: key of compile_check.cases.SHAPES (the release's speed table)
    'cls224-s1-b128': 'cls', 'det800x1344-s1-b2': 'det1', 'seg512-s1-b16': 'seg',
    'det800x1344-s3-b2': 'det3'}
SCAN_SHAPE = 'det1'             # the scan alone at (2, 128, L = 67,200)
AGREEMENT = 1e-2                # largest relative L2 error against the PyTorch path
REFERENCE_ARCH = 90             # the byte floor's bandwidth: compile_check.targets.ARCHS[90]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda',
                        help='cuda (default) for real timings; cpu runs a smoke test with '
                             'Triton under the interpreter (implies nothing about speed)')
    parser.add_argument('--small', action='store_true',
                        help='tiny shapes instead of the speed table (for --device cpu)')
    parser.add_argument('--dtype', nargs='+', choices=['fp32', 'bf16', 'fp16'],
                        default=['fp32'])
    parser.add_argument('--backends', default='triton,torch',
                        help='comma-separated subset of triton,torch')
    parser.add_argument('--no-scan', action='store_true', help='skip the scan-alone benchmark')
    parser.add_argument('--json', metavar='PATH', help='also write the results as JSON')
    args = parser.parse_args(argv)
    args.backends = args.backends.split(',')
    unknown = set(args.backends) - {'triton', 'torch'}
    if unknown:
        parser.error(f'unknown backends {sorted(unknown)}; choose from triton, torch')
    return args


def cases(args):
    """``(row name, op, compile_check Shape, shape key or None)`` to time."""
    from mmspatialmamba.ops.compile_check.cases import SHAPES as MODEL_SHAPES, Shape
    if args.small:
        sasf = [('small-a', 'sasf', Shape('small', 1, 8, 7, 9), None)]
        scan = [('scan-small', 'scan', Shape('small', 1, 4, 1, 50), None)]
    else:
        sasf = [(name, 'sasf', MODEL_SHAPES[key], key) for name, key in SHAPES.items()]
        s = MODEL_SHAPES[SCAN_SHAPE]
        scan = [(f'scan-{s.batch}x{s.dim}x{s.height * s.width}', 'scan', s, SCAN_SHAPE)]
    return sasf + ([] if args.no_scan else scan)


def _forward_backward(call, backend, upstream):
    """``call``'s output and its leaves' gradients for ``upstream`` (None: a fresh one)."""
    import torch
    out = call(backend)
    upstream = torch.randn_like(out) if upstream is None else upstream
    return out.detach(), torch.autograd.grad(out, list(call.leaves.values()), upstream), upstream


def _rel_err(out, ref):
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def check_results(call, backends):
    """Per backend, whether its output and gradients are finite; the largest relative L2
    error of Triton's against the PyTorch path's (None unless both run); and the upstream
    gradient used."""
    import torch
    results, upstream = {}, None
    for backend in backends:
        out, grads, upstream = _forward_backward(call, backend, upstream)
        results[backend] = (out, grads)
    finite = {b: all(bool(torch.isfinite(t).all()) for t in (out, *grads))
              for b, (out, grads) in results.items()}
    err = None
    if {'triton', 'torch'} <= set(results):
        pairs = zip((results['triton'][0], *results['triton'][1]),
                    (results['torch'][0], *results['torch'][1]))
        err = max(_rel_err(t, r) for t, r in pairs)
    return finite, err, upstream


def time_backend(call, backend, upstream, device):
    """Median ms of ``call``'s forward and of its forward+backward on ``backend``, and the
    peak MiB of forward+backward (None on the CPU)."""
    import torch
    from mmspatialmamba.analysis.timing import kernel_time_ms, peak_memory_mib

    def forward():
        with torch.no_grad():
            call(backend)

    def forward_backward():
        _forward_backward(call, backend, upstream)

    timer = dict(device=device, cpu_warmup=0, cpu_iters=1)
    return (kernel_time_ms(forward, **timer), kernel_time_ms(forward_backward, **timer),
            peak_memory_mib(forward_backward, device))


def bench_case(args, dtype_name, name, op, shape, key):
    """Yield one row per backend for ``op`` at ``shape`` (``key``: its name in the model's
    shapes, for the release's times)."""
    import torch
    from mmspatialmamba.ops.compile_check.cases import CALLS, DTYPES, random_leaf
    from mmspatialmamba.ops.compile_check.targets import ARCHS
    from mmspatialmamba.ops.compile_check.timing import floor_bytes, release_ms
    dtype = DTYPES[dtype_name]
    hbm = ARCHS[REFERENCE_ARCH].hbm_bytes_per_s
    call = CALLS[op](shape, dtype, random_leaf(torch.device(args.device)))
    finite, err, upstream = check_results(call, args.backends)
    fwd_floor = floor_bytes(op, 'forward', shape, dtype)
    fb_floor = fwd_floor + floor_bytes(op, 'backward', shape, dtype)
    for backend in args.backends:
        t_fwd, t_fb, peak = time_backend(call, backend, upstream, args.device)
        yield dict(
            dtype=dtype_name, shape=name, op=op,
            dims=[shape.batch, shape.dim, shape.d_state, shape.height * shape.width],
            backend=backend, fwd_ms=t_fwd, fwd_bwd_ms=t_fb,
            fwd_gbps=fwd_floor / t_fwd / 1e6, fwd_bwd_gbps=fb_floor / t_fb / 1e6,
            fwd_x_floor=t_fwd / (fwd_floor / hbm * 1e3),
            fwd_bwd_x_floor=t_fb / (fb_floor / hbm * 1e3),
            release_fwd_ms=release_ms(op, key, dtype, 'forward') if key else None,
            release_fwd_bwd_ms=release_ms(op, key, dtype, 'backward') if key else None,
            peak_mib=peak, finite=finite[backend],
            rel_err_vs_torch=err if backend == 'triton' else None)


def print_table(rows):
    def fmt(v, spec):
        return '-' if v is None else format(v, spec)
    header = (f'{"dtype":<6}{"shape":<22}{"backend":<9}{"fwd ms":>9}{"f+b ms":>9}'
              f'{"fwd GB/s":>10}{"fwd xfloor":>11}{"f+b xfloor":>11}{"rel fwd":>9}{"rel f+b":>9}'
              f'{"peak MiB":>10}{"finite":>8}{"err vs torch":>14}')
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f'{r["dtype"]:<6}{r["shape"]:<22}{r["backend"]:<9}{fmt(r["fwd_ms"], ".3f"):>9}'
              f'{fmt(r["fwd_bwd_ms"], ".3f"):>9}{fmt(r["fwd_gbps"], ".4g"):>10}'
              f'{fmt(r["fwd_x_floor"], ".3g"):>11}{fmt(r["fwd_bwd_x_floor"], ".3g"):>11}'
              f'{fmt(r["release_fwd_ms"], ".3f"):>9}{fmt(r["release_fwd_bwd_ms"], ".3f"):>9}'
              f'{fmt(r["peak_mib"], ".0f"):>10}{"yes" if r["finite"] else "NO":>8}'
              f'{fmt(r["rel_err_vs_torch"], ".2g"):>14}')


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cpu':
        # Must be set before triton is imported: the Triton backend then runs interpreted.
        os.environ.setdefault('TRITON_INTERPRET', '1')
        if not args.small:
            sys.exit('--device cpu only makes sense with --small: the interpreter would take '
                     'hours on the speed-table shapes')
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('bench_ops.py: no CUDA device is available; the timings need a GPU. '
                 'For a smoke test on CPU run: python benchmarks/bench_ops.py --device cpu '
                 '--small')
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                   else 'cpu (Triton interpreter; times mean nothing)')
    print(f'device: {device_name}; dtypes: {", ".join(args.dtype)}; torch {torch.__version__}')
    torch.manual_seed(0)
    rows = []
    for dtype_name, (name, op, shape, key) in itertools.product(args.dtype, cases(args)):
        for row in bench_case(args, dtype_name, name, op, shape, key):
            rows.append(row)
            if args.json:  # after every row, so a run stopped by a time cap keeps its rows
                with open(args.json, 'w') as f:
                    json.dump(dict(device=device_name, torch=torch.__version__, rows=rows), f,
                              indent=1)
    print_table(rows)
    if args.json:
        print(f'wrote {args.json}')
    bad = [r for r in rows if not r['finite'] or (r['rel_err_vs_torch'] or 0) > AGREEMENT]
    for r in bad:
        print(f'FAILED: {r["dtype"]} {r["shape"]} {r["backend"]}: finite {r["finite"]}, '
              f'relative error against torch {r["rel_err_vs_torch"]}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
