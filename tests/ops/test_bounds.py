"""No kernel loads or stores outside its tensors (``interpreter_bounds.py``, on for every op
test by conftest.py, so every interpreted case of the other op tests is checked too): the
checker itself on small kernels, then the scan and the fused op, which launches every
kernel, forward and backward at GPU launch sizes on odd shapes, with the kernels each case
checked asserted (the fusion alone at GPU sizes: ``test_state_fusion.test_gpu_tiles``).

The GPU sizes come from ``_utils.gpu_capability`` patched to a GPU's: one channel per scan
program with the state padded (N = 3 in blocks of 4), the chunked scan's summary and carry,
fusion tiles that end mid-row, tap-sum chunks and border blocks that end part-way. Values
are compared with the float64 oracle as in the other op tests.
"""
import pytest
import torch
import triton
import triton.language as tl
from interpreter_bounds import OutOfBounds, check_bounds
from op_utils import SASF_NAMES, SCAN_NAMES, compare, sasf_inputs, scan_inputs
from spec_oracle import sasf_oracle, scan_oracle

from mmspatialmamba.ops import _utils, selective_scan, structure_aware_ssm

SCAN_KERNELS = {'_selective_scan_fwd_kernel', '_selective_scan_bwd_kernel'}
FUSION_KERNELS = {'_state_fusion_fwd_kernel', '_state_fusion_bwd_kernel',
                  '_state_fusion_tap_sums_kernel', '_state_fusion_bwd_border_kernel'}


@triton.jit
def _copy_kernel(x_ptr, y_ptr, n, extra, shift, BLOCK: tl.constexpr):
    """``y[i + shift] = x[i]`` for i < n, reading ``extra`` elements past ``n``."""
    offs = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n + extra, other=0.0)
    tl.store(y_ptr + offs + shift, x, mask=offs < n)


def copy(x: torch.Tensor, extra: int = 0, shift: int = 0) -> torch.Tensor:
    y = torch.zeros_like(x)
    _copy_kernel[(1,)](x, y, x.numel(), extra, shift, BLOCK=16)
    return y


def test_lanes_inside_pass_and_results_come_back(bounds_checked):
    x = torch.arange(10.0)
    assert torch.equal(copy(x), x)
    assert bounds_checked.launches['_copy_kernel'] == 1
    assert bounds_checked.lanes['_copy_kernel'] == 20          # 10 loaded, 10 stored


def test_a_load_past_the_end_names_kernel_argument_and_offset():
    with pytest.raises(OutOfBounds) as error:
        copy(torch.arange(10.0), extra=3)
    assert str(error.value) == (
        '_copy_kernel: 3 active lane(s) of loads outside the tensor passed as x_ptr '
        '(40 bytes): byte offsets 40..51, up to 12 bytes past its end')


def test_a_store_before_the_start_is_caught():
    with pytest.raises(OutOfBounds, match=r'1 active lane\(s\) of stores outside the tensor '
                       r'passed as y_ptr \(40 bytes\): byte offsets -4..-1, up to 4 bytes '
                       r'before its start'):
        copy(torch.arange(10.0), shift=-1)


def test_a_view_may_read_its_whole_storage():
    """Bounds are those of the storage: a view's kernel may read the rest of it (the scan's
    ``B`` and ``C`` are views of one projection)."""
    base = torch.arange(12.0)
    assert torch.equal(copy(base[:10], extra=2), base[:10])


def test_the_checker_does_not_nest():
    with pytest.raises(RuntimeError, match='already'):
        with check_bounds():
            pass


def on_gpu(monkeypatch, capability):
    monkeypatch.setattr(_utils, 'gpu_capability', lambda device: capability)


def test_chunked_scan_at_gpu_sizes(monkeypatch, bounds_checked, seed):
    """(1, 5, 3, 2100): five one-channel rows in chunks (5 forward, 9 backward), each state
    block padded from 3 to 4: the carry reads only the summaries of real states."""
    on_gpu(monkeypatch, (9, 0))
    blocks = _utils.scan_blocks(1, 5, 3, 2100, torch.device('cpu'))
    assert (blocks.d, blocks.n) == (1, 4) and blocks.chunk < 2100, blocks
    compare(selective_scan, scan_oracle, scan_inputs(1, 5, 3, 2100, torch.float32),
            SCAN_NAMES, torch.float32, seed, backends=['triton'])
    assert set(bounds_checked.launches) == SCAN_KERNELS
    assert bounds_checked.launches['_selective_scan_fwd_kernel'] == 2      # summary, main


def test_sasf_at_gpu_sizes(monkeypatch, bounds_checked, seed):
    """The fused op on a 9 x 120 map (1,080 positions: two chunks of the scan), so every
    kernel with the observation and the skip term: forward tiles of 512 pixels ending
    mid-row, backward tiles of 64 columns (the last 56 wide), a partial tap-sum chunk and
    border block."""
    on_gpu(monkeypatch, (9, 0))
    assert _utils.scan_blocks(1, 1, 1, 9 * 120, torch.device('cpu')).chunk < 9 * 120
    compare(structure_aware_ssm, sasf_oracle, sasf_inputs(1, 1, 9, 120, torch.float32),
            SASF_NAMES, torch.float32, seed, backends=['triton'], hw=(9, 120))
    assert set(bounds_checked.launches) == SCAN_KERNELS | FUSION_KERNELS
