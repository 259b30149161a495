"""Op-test set-up on top of ../conftest.py: no TF32 in the PyTorch path's convolutions, every
interpreted launch bounds-checked, and a Triton interpreter whose associative scans take
whole arrays.

cuDNN runs float32 convolutions in TF32 by default on Ampere and newer GPUs (about 1e-3
relative error), which would fail the float32 tolerances of the PyTorch path on CUDA tensors;
``TRITON_F32_DEFAULT=ieee`` does the same for the kernels.

Every kernel an op test runs under the interpreter fails the test when an active lane of a
load or store falls outside the tensors of its launch (``interpreter_bounds.py``).

The interpreter of Triton 3.9 (``triton/runtime/interpreter.py``, ``ScanOps.generic_scan``)
runs ``tl.associative_scan`` as a Python loop that calls the combine function once per
element, so a scan kernel at GPU block sizes (2,048-element tiles) took about 7 times as
long. :func:`doubling_scan` computes the same inclusive scan in log2(n) calls of the
combine function on whole arrays (Hillis and Steele), an order of combination closer to a
GPU's tree than the loop's; the scan kernels' results are checked against float64 oracles
either way.
"""
from typing import List

import numpy as np
import pytest
import torch
from interpreter_bounds import check_bounds
from triton.runtime import interpreter

# Whether kernels run under the interpreter (the hooks below patch only its code): the ops'
# own test of TRITON_INTERPRET.
from mmspatialmamba.ops.dispatch import _interpreter_on as interpreted


@pytest.fixture(autouse=True)
def no_tf32(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)


@pytest.fixture(autouse=True)
def bounds_checked():
    """The :class:`interpreter_bounds.BoundsChecker` of the test: what it checked."""
    if not interpreted():
        yield None
        return
    with check_bounds() as checker:
        yield checker


def doubling_scan(self, inputs: List) -> List:
    """``ScanOps.generic_scan``: the inclusive scan of the tuple ``inputs`` (tl.tensors of
    one shape) along ``self.axis`` with ``self.combine_fn``, by doubling: after the step of
    ``shift``, element i holds the combination of elements ``i - 2 * shift + 1 .. i``.

    Each step combines every element with the one ``shift`` before it, rolled around the
    axis (blocks keep their power-of-two shape); the first ``shift`` elements keep their
    values, and their wrapped-around combinations are discarded."""
    values = [t.handle.data for t in inputs]
    dtypes = [t.dtype for t in inputs]
    length = values[0].shape[self.axis]
    first = np.arange(length).reshape([-1] + [1] * (values[0].ndim - 1 - self.axis))
    shift = 1
    while shift < length:
        lo = [self.to_tensor(np.roll(v, shift, axis=self.axis), d) for v, d in zip(values, dtypes)]
        hi = [self.to_tensor(v, d) for v, d in zip(values, dtypes)]
        with np.errstate(all='ignore'):       # the discarded wrapped-around lanes
            combined = self.combine_fn.fn(*lo, *hi)
        combined = combined if isinstance(combined, tuple) else (combined,)
        values = [np.where(first < shift, v, c.handle.data).astype(v.dtype)
                  for v, c in zip(values, combined)]
        shift *= 2
    return [self.to_tensor(v, d) for v, d in zip(values, dtypes)]


@pytest.fixture(autouse=True)
def fast_interpreted_scans(monkeypatch):
    if interpreted():
        monkeypatch.setattr(interpreter.ScanOps, 'generic_scan', doubling_scan)
