"""The GPU check's determinism part: each op called twice on the same inputs gives the same
output and gradients, bit for bit (``benchmarks/gpu_check.py``'s ``determinism_cases``).

A kernel that accumulates with atomics in a varying order, or reads memory it did not write,
differs between calls; training runs that must replay need neither. ``cuda`` tests; in the
GPU check's dry run (``MMSM_GPU_CHECK=dry``) the dry plan runs on the CPU, interpreted.
"""
import pytest
import torch
from gpu_plan import case_id, load_gpu_check

from mmspatialmamba.ops.compile_check.cases import CALLS, DTYPES, random_leaf

gpu_check = load_gpu_check()
DRY = gpu_check.is_dry()
DEVICE = torch.device('cpu' if DRY else 'cuda')
pytestmark = [pytest.mark.gpu_check] + ([] if DRY else [pytest.mark.cuda])


@pytest.mark.parametrize('case', gpu_check.determinism_cases(DRY), ids=case_id)
def test_op_twice_bit_for_bit(case, seed):
    call = CALLS[case.op](case.shape, DTYPES[case.dtype], random_leaf(DEVICE))
    leaves = list(call.leaves.values())
    runs, upstream = [], None
    for _ in range(2):
        out = call('triton')
        upstream = torch.randn_like(out) if upstream is None else upstream
        runs.append((out.detach(), torch.autograd.grad(out, leaves, upstream)))
    (out1, grads1), (out2, grads2) = runs
    assert torch.equal(out1, out2), (f'outputs differ in {(out1 != out2).sum()} elements '
                                     f'(seed {seed})')
    for name, g1, g2 in zip(call.leaves, grads1, grads2):
        assert torch.equal(g1, g2), f'd{name} differs in {(g1 != g2).sum()} elements (seed {seed})'
