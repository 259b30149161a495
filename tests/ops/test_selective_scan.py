"""``selective_scan`` on both backends against the float64 oracle: values and every gradient.

On CPU the Triton cases run under the interpreter (``TRITON_INTERPRET=1``, set by conftest.py),
which tests the kernels' logic: masks, strides, carries across blocks and chunks. Outputs are
NaN-poisoned (conftest.py), so an element a kernel never writes fails. Triton shapes stay
small because the interpreter is slow; ``test_long_sequence`` covers L = 67,200.
"""
import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton
from op_utils import (CPU, GPU_DTYPES, SASF_NAMES, SCAN_NAMES, TOL, assert_close, case,
                      case_id, compare, compare_backends, forward_backward, sasf_inputs,
                      scan_inputs)
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


def scan_float64(u, delta, A, B, delta_bias=None, delta_softplus=True, decay_ulps=0.0):
    """docs/model.md step 5 in float64 through the chunked ``linear_scan`` of the reference.

    Used at L = 67,200: autograd through the oracle's 67,200-step Python loop takes minutes,
    this takes a second. Its discretisation is written here from the equations; the short
    cases check every gradient against the oracle itself. ``decay_ulps``: every decay
    ``exp(dt A)`` moved by that many float32 units in the last place (the model of a GPU's
    ``exp`` below; gradients flow through the exact decay).
    """
    dt = delta.double() + (delta_bias.double()[:, None] if delta_bias is not None else 0)
    if delta_softplus:
        dt = torch.where(dt <= 20, torch.log1p(torch.exp(dt)), dt)
    decay = torch.exp(dt[:, :, None] * A.double()[None, :, :, None])    # (batch, D, N, L)
    if decay_ulps:
        rounded = decay.detach().float()
        ulp = torch.nextafter(rounded, torch.full_like(rounded, 2.0)) - rounded
        decay = decay + decay_ulps * ulp.double()
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


def mamba_scan_inputs(dim: int, length: int, device: torch.device = CPU) -> list:
    """``[u, delta, A, B, delta_bias]`` with the step sizes of a freshly initialised Mamba
    block: ``dt = softplus(delta + delta_bias)``, ``delta_bias`` the inverse softplus of
    ``dt0`` drawn log-uniformly in [1e-3, 1e-1] per channel (the first channel at 1e-3, the
    last at 1e-1), ``delta`` = 0.5 randn; ``A = -1``, N = 1, batch 1.

    At dt ~ 1e-3 a state decays by exp(-2) over 2,048 positions, so the state carried from
    one chunk of the chunked scan into the next, ``exp(A * sum(dt)) * h``, counts; the
    other inputs (``scan_inputs``) reset the state every 7 positions, where it is exactly 0.
    """
    log_dt = torch.empty(dim).uniform_(math.log(1e-3), math.log(1e-1))
    log_dt[0], log_dt[-1] = math.log(1e-3), math.log(1e-1)
    dt0 = log_dt.exp()
    delta_bias = dt0 + torch.log(-torch.expm1(-dt0))
    delta = 0.5 * torch.randn(1, dim, length)
    inputs = [torch.randn(1, dim, length), delta, -torch.ones(dim, 1),
              torch.randn(1, 1, length), delta_bias]
    return [t.to(device) for t in inputs]


# The GPU's exp. ``tl.exp`` of float32 compiles to ``ex2.approx.f32`` of ``x * log2(e)``, up
# to 2 ulp from the correctly rounded decay (PTX ISA); the interpreter and the PyTorch path
# round correctly. Modelled by ``scan_float64(decay_ulps=...)`` at L = 67,200 with Mamba's
# step sizes (``test_gpu_exp_model_within_its_tolerance``, 8 channels, three draws): every
# decay 2 ulp off in one direction, the worst case, moves h by 6e-6 to 9e-6 relative L2
# (7e-5 in the channel at dt = 1e-3, whose state remembers ~1,000 steps), dA by up to 6e-5
# and the other gradients by up to 1.3e-5; errors of either sign, as rounding makes them,
# largely cancel. libdevice's ``expf`` is no remedy: it is specified at 2 ulp as well (CUDA
# C Programming Guide, mathematical functions), and in the scan kernels it costs registers
# (the compile report at the classification shape, fp32: the SASF backward on sm_86 from
# 105 to 127, the scan backward there spilling 4 bytes); only a float64 exp rounds
# correctly, at 1/64 of the float32 rate on sm_86 and sm_89. So the kernels keep ``tl.exp``,
# and the GPU test at these step sizes states a tolerance that covers the worst case more
# than twice over:
GPU_EXP_TOL = (3e-5, 3e-4)       # (values, gradients), relative L2 against float64


def check_against_float64(inputs: list, out, grads, upstream, tol: tuple, seed: int) -> None:
    """Values and every gradient of a scan of ``inputs`` against ``scan_float64``."""
    ref, ref_grads, _ = forward_backward(scan_float64, [t.double() for t in inputs], upstream)
    assert_close('output', out, ref, tol[0], seed)
    for name, g, g_ref in zip(SCAN_NAMES, grads, ref_grads):
        assert_close(f'd{name}', g, g_ref, tol[1], seed)


def test_mamba_step_sizes_chunked_at_gpu_sizes(seed, monkeypatch):
    """Mamba's initial step sizes at L = 67,200 through the chunked scan at sm_90 sizes
    (2 channels of one image: 33 chunks of 2,048 positions), forward and backward, against
    float64; the slowest channel keeps more than 1% of its state across a chunk."""
    monkeypatch.setattr(_utils, 'gpu_capability', lambda device: (9, 0))
    length = 200 * 336
    inputs = mamba_scan_inputs(2, length)
    blocks = _utils.scan_blocks(1, 2, 1, length, CPU)
    assert triton.cdiv(length, blocks.chunk) > 8, blocks
    dt = torch.nn.functional.softplus(inputs[1][0, 0] + inputs[4][0])
    assert torch.exp(-dt[:blocks.chunk].sum()) > 0.01
    out, grads, upstream = forward_backward(selective_scan, inputs, backend='triton')
    check_against_float64(inputs, out, grads, upstream, TOL[torch.float32], seed)


def test_gpu_exp_model_within_its_tolerance(seed):
    """The model behind ``GPU_EXP_TOL``: every decay 2 ulp off, at L = 67,200 with Mamba's
    step sizes, stays within half the tolerance (values and every gradient)."""
    inputs = [t.double() for t in mamba_scan_inputs(8, 200 * 336)]
    exact, exact_grads, upstream = forward_backward(scan_float64, inputs)
    out, grads, _ = forward_backward(scan_float64, inputs, upstream, decay_ulps=2.0)
    assert_close('output', out, exact, GPU_EXP_TOL[0] / 2, seed)
    for name, g, g_ref in zip(SCAN_NAMES, grads, exact_grads):
        assert_close(f'd{name}', g, g_ref, GPU_EXP_TOL[1] / 2, seed)


@pytest.mark.cuda
def test_cuda_mamba_step_sizes(seed):
    """On the GPU (its ``exp``, ``GPU_EXP_TOL``): Mamba's initial step sizes at L = 67,200,
    one image of 16 channels (chunked), forward and backward, against float64."""
    inputs = mamba_scan_inputs(16, 200 * 336, torch.device('cuda'))
    out, grads, upstream = forward_backward(selective_scan, inputs, backend='triton')
    check_against_float64(inputs, out, grads, upstream, GPU_EXP_TOL, seed)


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
