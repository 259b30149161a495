"""``selective_scan`` on both backends against the float64 oracle: values and every gradient.

On CPU the Triton cases run under the interpreter (``TRITON_INTERPRET=1``, set by conftest.py),
which tests the kernels' logic: masks, strides, carries across blocks and chunks. Outputs are
NaN-poisoned (conftest.py), so an element a kernel never writes fails. Triton shapes stay
small because the interpreter is slow; ``test_long_sequence`` covers L = 67,200.
"""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton
from op_utils import (CPU, GPU_DTYPES, SASF_NAMES, SCAN_NAMES, TOL, assert_close, case,
                      case_id, compare, compare_backends, sasf_inputs, scan_inputs)
from spec_oracle import sasf_oracle, scan_oracle

from mmspatialmamba.ops import _utils, selective_scan, structure_aware_ssm
from mmspatialmamba.ops.selective_scan.reference import linear_scan

DIMS = 'BDNL'
CASES = [
    *(case('torch', DIMS, shape, softplus=softplus)
      for shape in [(1, 1, 1, 1), (2, 4, 1, 37), (1, 3, 2, 64), (2, 8, 3, 1025), (1, 2, 1, 5000)]
      for softplus in (True, False)),
    case('torch', DIMS, (2, 8, 1, 200), torch.bfloat16),
    case('torch', DIMS, (2, 8, 1, 200), torch.float16),
    case('triton', DIMS, (1, 4, 1, 1)),
    case('triton', DIMS, (2, 8, 1, 37)),
    case('triton', DIMS, (1, 3, 3, 50), bias=False, layout='strided'),   # N > 1, odd D
    case('triton', DIMS, (2, 5, 1, 45), softplus=False),
    case('triton', DIMS, (1, 18, 2, 21), layout='strided'),   # D not a multiple of a block
    case('triton', DIMS, (2, 6, 1, 33), torch.bfloat16),
    case('triton', DIMS, (1, 6, 2, 29), torch.float16, layout='strided'),
]


@pytest.mark.parametrize('backend,shape,dtype,options', CASES)
def test_selective_scan(backend, shape, dtype, options, seed):
    compare(selective_scan, scan_oracle, scan_inputs(*shape, dtype, **options), SCAN_NAMES,
            dtype, seed, backends=[backend], delta_softplus=options.get('softplus', True))


def force_chunks(monkeypatch, block_l: int = 16, chunk: int = 32) -> None:
    """Make both scan launchers cut the sequence into chunks of ``chunk`` positions, walked
    ``block_l`` at a time: the chunked scan GPU sizes pick only for few rows."""
    real = _utils.scan_blocks
    monkeypatch.setattr(_utils, 'scan_blocks', lambda *args, **kwargs: dataclasses.replace(
        real(*args, **kwargs), l=block_l, chunk=chunk))


CHUNKED_CASES = [
    case('triton', DIMS, (2, 3, 2, 100)),           # 4 chunks of 32, the last one 4 long
    case('triton', DIMS, (1, 5, 1, 160), bias=False, softplus=False),   # 5 full chunks
    case('triton', DIMS, (2, 4, 1, 70), torch.bfloat16, layout='strided'),
    case('triton', DIMS, (1, 2, 1, 20)),            # shorter than one chunk
]


@pytest.mark.parametrize('backend,shape,dtype,options', CHUNKED_CASES)
def test_chunked_scan(backend, shape, dtype, options, seed, monkeypatch):
    """The chunked scan (summary launch, carries across chunks, main launch), forward and
    backward, against the oracle."""
    force_chunks(monkeypatch)
    compare(selective_scan, scan_oracle, scan_inputs(*shape, dtype, **options), SCAN_NAMES,
            dtype, seed, backends=[backend], delta_softplus=options.get('softplus', True))


def test_chunked_scan_carries_across_chunks(seed, monkeypatch):
    """Small step sizes (decay about 0.5 over a chunk, where the other cases forget within
    a few positions): states and gradients carry across several chunks (7 chunks of 32)."""
    force_chunks(monkeypatch)
    u, delta, A, B, _ = scan_inputs(2, 3, 2, 200, torch.float32, bias=False, softplus=False)
    compare(selective_scan, scan_oracle, [u, 0.05 * delta, A, B, None], SCAN_NAMES,
            torch.float32, seed, backends=['triton'], delta_softplus=False)


def test_chunked_scan_in_the_fused_op(seed, monkeypatch):
    """The fused SASF op through the chunked scan: its backward adds the skip term per chunk
    (``du += dy * D``, ``dD`` summed over chunks)."""
    force_chunks(monkeypatch)
    compare(structure_aware_ssm, sasf_oracle, sasf_inputs(1, 3, 5, 13, torch.float32),
            SASF_NAMES, torch.float32, seed, backends=['triton'], hw=(5, 13))


def test_gpu_sizes_chunk_only_latency_bound_rows(monkeypatch):
    """GPU sizes: detection stage 1 at batch 1 (128 rows) is chunked, forward and backward,
    so that both launches of the chunked scan have >= 4 programs per SM of the reference
    board, in whole blocks; batch 2 (256 rows), classification and segmentation are not."""
    monkeypatch.setattr(_utils, 'gpu_capability', lambda device: (9, 0))
    length = 200 * 336
    for backward in (False, True):
        det = _utils.scan_blocks(1, 128, 1, length, CPU, backward)
        n_chunks = triton.cdiv(length, det.chunk)
        assert det.chunk % det.l == 0, det
        assert 128 // det.d * (n_chunks - 1) >= 4 * _utils.REFERENCE_SMS, det
        for batch, length_ in ((2, length), (128, 56 * 56), (16, 128 * 128)):
            assert _utils.scan_blocks(batch, 128, 1, length_, CPU, backward).chunk >= length_


def test_gpu_sizes_chunked_under_the_interpreter(seed, monkeypatch):
    """The chunked scan at GPU sizes (one channel per program, 1024-position blocks): 2 rows
    of 2,500 positions make 3 chunks."""
    monkeypatch.setattr(_utils, 'gpu_capability', lambda device: (9, 0))
    assert triton.cdiv(2500, _utils.scan_blocks(1, 2, 1, 2500, CPU).chunk) == 3
    compare(selective_scan, scan_oracle, scan_inputs(1, 2, 1, 2500, torch.float32),
            SCAN_NAMES, torch.float32, seed, backends=['triton'])


COMPILE_CHUNKED = """
import os, sys
os.environ['TRITON_CACHE_DIR'] = sys.argv[1]
from mmspatialmamba.ops.compile_check import cases
from mmspatialmamba.ops.compile_check.report import Selection, check
cases.SHAPES['det1b1'] = cases.Shape('det 800x1344 stage 1 batch 1', 1, 128, 200, 336)
sys.exit(1 if check([Selection([90], ['scan', 'sasf'], ['det1b1'], ['fp32']),
                     Selection([80], ['sasf'], ['det1b1'], ['bf16'])], sys.stdout, strict=True)
         else 0)
"""


def test_chunked_scan_compiles_for_gpus(tmp_path):
    """The chunked launches (summary and main, forward and backward, with and without the
    SASF skip term) through the compile check with ``--strict`` on sm_90 and sm_80: the
    model shapes in ``tools/compile_check.py`` do not chunk (detection at batch 1 does)."""
    env = {**os.environ, 'TRITON_INTERPRET': '0'}
    proc = subprocess.run([sys.executable, '-c', COMPILE_CHUNKED, str(tmp_path)], env=env,
                          cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=600)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    for arch in ('sm_90', 'sm_80'):
        for kernel in ('_selective_scan_fwd_kernel', '_selective_scan_bwd_kernel'):
            rows = [r for r in report.splitlines() if r.startswith(f'{arch}  {kernel}')]
            assert any('SUMMARY=True' in r for r in rows), report
            assert any('SUMMARY=False,BOUNDS=8' in r for r in rows), report


def test_large_step_sizes_without_bias(seed):
    """Step sizes above softplus's threshold (decays underflow to 0), no bias: the PyTorch
    scan stays finite and exact."""
    u, delta, A, B, _ = scan_inputs(1, 4, 1, 300, torch.float32)
    delta = 25 + torch.rand_like(delta)
    assert torch.isfinite(selective_scan(u, delta, A, B, None, True, backend='torch')).all()
    compare(selective_scan, scan_oracle, [u, delta, A, B, None], SCAN_NAMES, torch.float32,
            seed, backends=['torch'])


def scan_float64(u, delta, A, B, delta_bias=None, delta_softplus=True):
    """docs/model.md step 5 in float64 through the chunked ``linear_scan`` of the reference.

    Used for gradients at L = 67,200 only: autograd through the oracle's 67,200-step Python
    loop takes minutes, this takes a second. Its discretisation is written here from the
    equations; the short cases check every gradient against the oracle itself.
    """
    dt = delta.double() + (delta_bias.double()[:, None] if delta_bias is not None else 0)
    if delta_softplus:
        dt = torch.where(dt <= 20, torch.log1p(torch.exp(dt)), dt)
    decay = torch.exp(dt[:, :, None] * A.double()[None, :, :, None])    # (batch, D, N, L)
    inp = (dt * u.double())[:, :, None] * B.double()[:, None]
    time_major = [x.flatten(1, 2).transpose(1, 2) for x in (decay, inp)]
    return linear_scan(*time_major).transpose(1, 2).view(decay.shape)


def test_long_sequence(seed):
    """L = 67,200 (800x1344 detection, stage 1) on the Triton kernels: the scan's carry across
    many blocks. Values against the oracle, gradients against ``scan_float64``."""
    inputs = scan_inputs(1, 1, 1, 200 * 336, torch.float32)
    leaves = [t.detach().requires_grad_(True) for t in inputs]
    h = selective_scan(*leaves, backend='triton')
    upstream = torch.randn(h.shape, dtype=torch.float64)
    grads = torch.autograd.grad(h, leaves, upstream.float())
    with torch.no_grad():
        assert_close('output', h, scan_oracle(*inputs), TOL[torch.float32][0], seed)
    ref_leaves = [t.detach().double().requires_grad_(True) for t in inputs]
    ref_grads = torch.autograd.grad(scan_float64(*ref_leaves), ref_leaves, upstream)
    for name, g, g_ref in zip(SCAN_NAMES, grads, ref_grads):
        assert_close(f'd{name}', g, g_ref, TOL[torch.float32][1], seed)


GPU_SHAPES = [(2, 8, 2, 37), (2, 64, 2, 56 * 57), (1, 16, 2, 200 * 336), (2, 512, 2, 7 * 12)]


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', GPU_SHAPES, ids=[case_id(DIMS, s) for s in GPU_SHAPES])
def test_cuda_matches_oracle(shape, dtype, seed):
    """Both backends on CUDA tensors (channels-innermost strides) against the oracle."""
    compare(selective_scan, scan_oracle,
            scan_inputs(*shape, dtype, torch.device('cuda'), layout='strided'),
            SCAN_NAMES, dtype, seed, backends=['torch', 'triton'])


MODEL_SHAPES = [(128, 64, 1, 56 * 56), (2, 64, 1, 200 * 336), (2, 512, 1, 25 * 42)]


@pytest.mark.cuda
@GPU_DTYPES
@pytest.mark.parametrize('shape', MODEL_SHAPES, ids=[case_id(DIMS, s) for s in MODEL_SHAPES])
def test_cuda_triton_matches_torch(shape, dtype, seed):
    """Triton against the PyTorch path on CUDA at the models' shapes (224 classification
    batch 128 stage 1; 800x1344 detection stages 1 and 4), too long for the oracle."""
    compare_backends(selective_scan, scan_inputs(*shape, dtype, torch.device('cuda')),
                     SCAN_NAMES, dtype, seed)
