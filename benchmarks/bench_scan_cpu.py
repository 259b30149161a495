"""CPU speed of the PyTorch (chunked) selective scan against a naive per-position loop.

Usage: .venv/bin/python benchmarks/bench_scan_cpu.py [--threads N] [--repeats R]

Both compute the same float32 states h (batch, D, 1, L); the naive loop is the textbook
recurrence with one Python iteration per position. Prints median wall times and the ratio.
The naive backward takes minutes beyond a few thousand positions, so forward+backward is
timed only up to ``--max-bwd-length`` positions.
"""
import argparse

import torch

from mmspatialmamba.analysis.timing import measure
from mmspatialmamba.ops import selective_scan

SHAPES = [(2, 128, 56 * 56), (1, 128, 128 * 128), (2, 128, 200 * 336)]  # (batch, D, L)


def naive_scan(u, delta, A, B, delta_bias):
    dt = torch.nn.functional.softplus(delta + delta_bias[:, None])
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1])
    states = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] \
            * B[:, None, :, t]
        states.append(h)
    return torch.stack(states, dim=-1)


def median_time(fn, repeats):
    """Median wall seconds of ``repeats`` calls, no warm-up (each call takes seconds)."""
    return measure(fn, 'cpu', warmup=0, iters=repeats).median_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--max-bwd-length', type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {args.threads} threads, median of {args.repeats}')
    print(f'{"shape (B, D, L)":>22} | {"pass":>8} | {"naive s":>8} | {"chunked s":>9} | speed-up')
    for batch, dim, length in SHAPES:
        inputs = [torch.randn(batch, dim, length), torch.randn(batch, dim, length),
                  -torch.rand(dim, 1), torch.randn(batch, 1, length), torch.randn(dim)]
        fwd = [lambda: naive_scan(*inputs),
               lambda: selective_scan(*inputs, backend='torch')]
        with torch.no_grad():
            naive_s, chunked_s = (median_time(f, args.repeats) for f in fwd)
        print(f'{str((batch, dim, length)):>22} | {"fwd":>8} | {naive_s:8.3f} | {chunked_s:9.3f}'
              f' | {naive_s / chunked_s:7.1f}x')
        if length > args.max_bwd_length:
            continue
        leaves = [t.requires_grad_() for t in inputs]

        def train(fn):
            fn(*leaves).sum().backward()
        naive_s = median_time(lambda: train(naive_scan), args.repeats)
        chunked_s = median_time(
            lambda: train(lambda *a: selective_scan(*a, backend='torch')), args.repeats)
        print(f'{str((batch, dim, length)):>22} | {"fwd+bwd":>8} | {naive_s:8.3f} | '
              f'{chunked_s:9.3f} | {naive_s / chunked_s:7.1f}x')


if __name__ == '__main__':
    main()
