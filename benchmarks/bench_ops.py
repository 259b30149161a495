"""Benchmark the SASF core (scan + fusion + observation, docs/model.md steps 5-7) and the scan alone.

For the four shapes of the release's speed table (measured on an H100, listed in
docs/results.md) and each backend, prints forward and forward+backward median times
(:func:`mmspatialmamba.analysis.timing.kernel_time_ms`: ``triton.testing.do_bench`` on CUDA),
effective GB/s and the ratio to the byte floor, the peak memory of forward+backward, and the
release's times beside. Backends, in the same process:

* ``triton``: ``structure_aware_ssm(..., backend='triton')``, our kernels;
* ``torch``: ``structure_aware_ssm(..., backend='torch')``, the PyTorch composition that is
  also the release's structure: the reference scan, three depthwise ``F.conv2d`` (cuDNN on
  the GPU) with replicate padding, then the observation.

Byte floor: 5 float32 passes over a (B, D, H*W) tensor at 3 TB/s (docs/model.md's definition) for
the forward; 10 passes for forward+backward (an assumption: the backward must at least read
dy, u, delta, h and write du, ddelta). Effective GB/s = floor bytes / measured time.

Usage (GPU; ``benchmarks/gpu_check.sh`` runs both dtypes)::

    python benchmarks/bench_ops.py --json benchmarks/results_h100.json
    python benchmarks/bench_ops.py --dtype bf16

Smoke test without a GPU (tiny shapes, Triton under the interpreter, wall-clock timing)::

    python benchmarks/bench_ops.py --device cpu --small
"""
import argparse
import functools
import itertools
import json
import os
import sys

SHAPES = {  # name: (B, D, H, W), release fwd ms, release fwd+bwd ms (H100, docs/model.md)
    'cls224-s1-b128': ((128, 128, 56, 56), 4.27, 15.06),
    'det800x1344-s1-b2': ((2, 128, 200, 336), 1.42, 5.22),
    'seg512-s1-b16': ((16, 128, 128, 128), 2.64, 9.33),
    'det800x1344-s3-b2': ((2, 512, 50, 84), 0.39, 2.01),
}
SMALL_SHAPES = {'small-a': ((1, 8, 7, 9), None, None)}   # --small: a smoke test
SCAN_SHAPE = (2, 128, 67200)            # release CUDA scan: 0.148 ms fwd, 0.553 ms fwd+bwd
SCAN_RELEASE = (0.148, 0.553)
HBM_BYTES_PER_S = 3e12


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda',
                        help='cuda (default) for real timings; cpu runs a smoke test with '
                             'Triton under the interpreter (implies nothing about speed)')
    parser.add_argument('--small', action='store_true',
                        help='tiny shapes instead of the speed table (for --device cpu)')
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'], default='fp32')
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


def make_inputs(shape, dtype, device, requires_grad):
    import torch
    batch, dim, height, width = shape
    length = height * width
    g = dict(device=device)
    acts = dict(u=torch.randn(batch, dim, length, **g),
                delta=0.5 * torch.randn(batch, dim, length, **g) - 1.0,
                B=torch.randn(batch, 1, length, **g), C=torch.randn(batch, 1, length, **g))
    acts = {k: v.to(dtype) for k, v in acts.items()}
    params = dict(A=-torch.ones(dim, 1, **g), D=torch.ones(dim, **g),
                  delta_bias=torch.zeros(dim, **g),
                  k1=torch.randn(dim, 1, 3, 3, **g) / 3, k3=torch.randn(dim, 1, 3, 3, **g) / 3,
                  k5=torch.randn(dim, 1, 3, 3, **g) / 3, alpha=torch.ones(3, **g))
    inputs = {**acts, **params}
    for v in inputs.values():
        v.requires_grad_(requires_grad)
    return inputs


def sasf_callable(backend, inputs, hw):
    from mmspatialmamba.ops import structure_aware_ssm
    order = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias', 'k1', 'k3', 'k5', 'alpha')
    args = [inputs[k] for k in order]
    return lambda: structure_aware_ssm(*args, hw, backend=backend)


def kernel_timer(device):
    """Median ms of a callable; on the CPU (a smoke test, times mean nothing) one call."""
    from mmspatialmamba.analysis.timing import kernel_time_ms
    return functools.partial(kernel_time_ms, device=device, cpu_warmup=0, cpu_iters=1)


def fwd_bwd(fn, inputs):
    import torch
    leaves = [v for v in inputs.values() if v.requires_grad]

    def run():
        out = fn()
        torch.autograd.grad(out, leaves, torch.ones_like(out))
    return run


def bench_sasf(args, dtype):
    """Yield one row per (shape, backend) of the SASF core."""
    import torch
    from mmspatialmamba.analysis.timing import peak_memory_mib
    bench = kernel_timer(args.device)
    shapes = SMALL_SHAPES if args.small else SHAPES
    for name, (shape, rel_fwd, rel_fb) in shapes.items():
        batch, dim, height, width = shape
        floor_bytes = 5 * batch * dim * height * width * 4
        for backend in args.backends:
            inputs = make_inputs(shape, dtype, args.device, requires_grad=True)
            fn = sasf_callable(backend, inputs, (height, width))
            with torch.no_grad():
                t_fwd = bench(fn)
            run = fwd_bwd(fn, inputs)
            t_fb = bench(run)
            yield dict(
                shape=name, dims=list(shape), backend=backend, fwd_ms=t_fwd, fwd_bwd_ms=t_fb,
                fwd_gbps=floor_bytes / t_fwd / 1e6, fwd_bwd_gbps=2 * floor_bytes / t_fb / 1e6,
                fwd_x_floor=t_fwd / (floor_bytes / HBM_BYTES_PER_S * 1e3),
                fwd_bwd_x_floor=t_fb / (2 * floor_bytes / HBM_BYTES_PER_S * 1e3),
                release_fwd_ms=rel_fwd, release_fwd_bwd_ms=rel_fb,
                peak_mib=peak_memory_mib(run, args.device))
            del inputs, fn, run


def bench_scan(args, dtype):
    """Yield one row per backend of the selective scan alone."""
    import torch
    from mmspatialmamba.analysis.timing import peak_memory_mib
    bench = kernel_timer(args.device)
    from mmspatialmamba.ops import selective_scan
    batch, dim, length = (1, 4, 50) if args.small else SCAN_SHAPE
    for backend in args.backends:
        g = dict(device=args.device)
        u = torch.randn(batch, dim, length, **g).to(dtype).requires_grad_()
        delta = (0.5 * torch.randn(batch, dim, length, **g) - 1).to(dtype).requires_grad_()
        A = (-torch.ones(dim, 1, **g)).requires_grad_()
        B = torch.randn(batch, 1, length, **g).to(dtype).requires_grad_()
        bias = torch.zeros(dim, **g).requires_grad_()

        def fn():
            return selective_scan(u, delta, A, B, bias, backend=backend)
        with torch.no_grad():
            t_fwd = bench(fn)
        run = fwd_bwd(fn, dict(u=u, delta=delta, A=A, B=B, bias=bias))
        yield dict(shape=f'scan-{batch}x{dim}x{length}', dims=[batch, dim, length],
                   backend=backend, fwd_ms=t_fwd, fwd_bwd_ms=bench(run),
                   release_fwd_ms=SCAN_RELEASE[0], release_fwd_bwd_ms=SCAN_RELEASE[1],
                   peak_mib=peak_memory_mib(run, args.device))


def print_table(rows):
    def fmt(v, spec):
        return '-' if v is None else format(v, spec)
    header = (f'{"shape":<22}{"backend":<13}{"fwd ms":>9}{"f+b ms":>9}{"fwd GB/s":>10}'
              f'{"fwd xfloor":>11}{"f+b xfloor":>11}{"rel fwd":>9}{"rel f+b":>9}{"peak MiB":>10}')
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f'{r["shape"]:<22}{r["backend"]:<13}{fmt(r["fwd_ms"], ".3f"):>9}'
              f'{fmt(r["fwd_bwd_ms"], ".3f"):>9}{fmt(r.get("fwd_gbps"), ".4g"):>10}'
              f'{fmt(r.get("fwd_x_floor"), ".3g"):>11}{fmt(r.get("fwd_bwd_x_floor"), ".3g"):>11}'
              f'{fmt(r.get("release_fwd_ms"), ".3f"):>9}{fmt(r.get("release_fwd_bwd_ms"), ".3f"):>9}'
              f'{fmt(r.get("peak_mib"), ".0f"):>10}')


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
    dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}[args.dtype]
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                   else 'cpu (Triton interpreter; times mean nothing)')
    print(f'device: {device_name}; dtype: {args.dtype}; torch {torch.__version__}')
    rows = []
    for row in itertools.chain(bench_sasf(args, dtype),
                               () if args.no_scan else bench_scan(args, dtype)):
        rows.append(row)
        if args.json:  # after every row, so a run stopped by a time cap keeps what it measured
            with open(args.json, 'w') as f:
                json.dump(dict(device=device_name, dtype=args.dtype, torch=torch.__version__,
                               rows=rows), f, indent=1)
    print_table(rows)
    if args.json:
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
