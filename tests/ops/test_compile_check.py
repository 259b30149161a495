"""The compile check (``tools/compile_check.py``): Triton's real compiler, no GPU.

The suite runs with ``TRITON_INTERPRET=1`` (conftest.py), which replaces ``@triton.jit``, so
the check runs in subprocesses with ``TRITON_INTERPRET=0``. The quick subset compiles every
kernel of the CUDA path (about 1 minute on 2 cores), and every kernel again for sm_86 (about
20 s); the broken-kernel case shows that a kernel the interpreter would run but the compiler
rejects fails the check.
"""
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mmspatialmamba.ops.compile_check import timing
from mmspatialmamba.ops.compile_check.cases import SHAPES
from mmspatialmamba.ops.compile_check.launch import Launch
from mmspatialmamba.ops.compile_check.targets import ARCHS, launch_problems, resident_blocks
from mmspatialmamba.ops.selective_scan.triton_fwd import _selective_scan_fwd_kernel
from mmspatialmamba.ops.state_fusion.triton_bwd import _state_fusion_tap_sums_kernel
from mmspatialmamba.ops.state_fusion.triton_fwd import _state_fusion_fwd_kernel

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ('_selective_scan_fwd_kernel', '_selective_scan_bwd_kernel', '_state_fusion_fwd_kernel',
           '_state_fusion_bwd_kernel', '_state_fusion_tap_sums_kernel',
           '_state_fusion_bwd_border_kernel')


def run_python(*args, timeout=900):
    env = {**os.environ, 'TRITON_INTERPRET': '0'}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def test_quick_check_compiles_every_kernel_forward_and_backward():
    """--strict: the kernels' goals too (no spills, >= 2 resident programs per SM)."""
    proc = run_python('tools/compile_check.py', '--quick', '--strict')
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    for arch in ('sm_90', 'sm_80'):
        for kernel in KERNELS:
            assert f'{arch}  {kernel}' in report, f'{kernel} not compiled for {arch}:\n{report}'
    for case in ('sasf fp32 cls 224 stage 1 (128,128,56,56) backward',
                 'fusion fp32 cls 224 stage 1 (128,128,56,56) backward',
                 'sasf bf16 det 800x1344 stage 1 (2,128,200,336) forward'):
        assert f'-- {case}' in report, report
    assert 'FAILED' not in report
    # The time model's summary: 5 fp32 passes over (128, 128, 56 * 56) at 3 TB/s = 343 us,
    # beside the release's measured times.
    assert 'floor 343 us (5 passes)' in report and 'release fwd 4270 us' in report, report
    assert 'release fwd+bwd 15060 us' in report, report
    # The kernels' forward goal on the model's path: every SASF forward within 1.5x of its
    # byte floor (docs/kernels.md, "Compile report").
    sasf_forwards = [block for block in report.split('\n-- ')
                     if block.startswith('sasf') and block.split('\n')[0].endswith('forward')]
    assert len(sasf_forwards) == 2, report
    for block in sasf_forwards:
        assert '(goal <= 1.5: met)' in block, block


def test_sm86_compiles_without_spills():
    """sm_86 (RTX 30 series: 1,536 threads per SM, where ptxas allocates registers unlike on
    sm_80 and sm_90) with --strict, so that a spill there fails CI: the scan and the model's
    op at the classification shape, fp32, whose 4-channel forward programs take their own
    tile on sm_86 and sm_89 (``_utils.SMALL_SCAN_TILE_ARCHS``) because the shared one
    spills there."""
    proc = run_python('tools/compile_check.py', '--arch', '86', '--op', 'scan', 'sasf',
                      '--shape', 'cls', '--dtype', 'fp32', '--strict')
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    for kernel in KERNELS:
        assert f'sm_86  {kernel}' in report, f'{kernel} not compiled for sm_86:\n{report}'


BROKEN = '''
import os, sys
os.environ['TRITON_CACHE_DIR'] = sys.argv[1]
import triton
import triton.language as tl
from mmspatialmamba.ops.compile_check import cases
from mmspatialmamba.ops.compile_check.fake_cuda import fake_cuda
from mmspatialmamba.ops.compile_check.report import Selection, check

SIZE = 128  # a plain int: a @triton.jit function cannot read it (the interpreter can)


@triton.jit
def _broken_kernel(x_ptr):
    offs = tl.arange(0, SIZE)
    tl.store(x_ptr + offs, offs)


def run_broken(shape, dtype):
    x = fake_cuda((128,), dtype, requires_grad=True)
    _broken_kernel[(1,)](x)
    return 2 * x, [x]


cases.OPS['broken'] = run_broken
sys.exit(1 if check([Selection([90], ['broken'], ['cls'], ['fp32'])], sys.stdout) else 0)
'''


def test_a_kernel_that_does_not_compile_fails_the_check(tmp_path):
    script = tmp_path / 'broken_case.py'
    script.write_text(textwrap.dedent(BROKEN))
    proc = run_python(str(script), str(tmp_path / 'cache'), timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'sm_90  _broken_kernel' in proc.stdout and 'FAILED to compile' in proc.stdout
    assert 'SIZE' in proc.stdout, proc.stdout
    # Its backward (2 * x) launches no kernel: reported, so a fallback cannot pass unseen.
    assert 'broken fp32 cls 224 stage 1 (128,128,56,56) backward launched no Triton' in (
        proc.stdout)


@pytest.mark.parametrize('cap, smem, fits', [(90, 200 * 1024, True), (80, 200 * 1024, False),
                                             (86, 99 * 1024, True), (86, 100 * 1024, False)])
def test_shared_memory_limit_per_architecture(cap, smem, fits):
    problems = launch_problems(ARCHS[cap], (1, 1, 1), warps=4, regs=32, smem=smem)
    assert (problems == []) == fits, problems


def test_grid_and_register_limits():
    arch = ARCHS[90]
    assert 'grid axis 1' in ' '.join(launch_problems(arch, (1, 65536, 1), 4, 32, 0))
    assert launch_problems(arch, (2**31 - 1, 65535, 65535), 4, 32, 0) == []
    # 255 registers x 1024 threads needs 2x the register file: not launchable.
    assert 'does not fit' in ' '.join(launch_problems(arch, (1, 1, 1), 32, 255, 0))


def test_resident_blocks_limiters():
    arch = ARCHS[90]
    assert resident_blocks(arch, regs=255, smem=0, warps=4) == (2, 'regs')
    assert resident_blocks(arch, regs=16, smem=0, warps=4) == (16, 'threads')
    assert resident_blocks(arch, regs=16, smem=100 * 1024, warps=4) == (2, 'smem')


def test_launch_time_is_bytes_at_bandwidth_and_chain_times_waves():
    arch = ARCHS[90]                                      # 132 SMs, 3 TB/s
    cost = timing.LaunchCost(bytes=3 * 10**6, steps=4, chain_s=1e-5, rule='hand')
    bytes_s, depth_s = timing.launch_time(cost, arch, programs=1000, resident=2)
    assert bytes_s == pytest.approx(1e-6)
    assert depth_s == pytest.approx(4 * 1e-5)             # ceil(1000 / 264) = 4 waves


def _launch(kernel, grid, args, constexprs):
    """A recorded launch of ``kernel`` whose named ``args`` are given, the others None."""
    return Launch('by hand', kernel, grid,
                  tuple(args.get(n) for n in kernel.arg_names if n not in constexprs),
                  constexprs)


def test_scan_rule_walks_the_sequence_in_blocks_and_counts_shared_storage_once():
    ud, x_dbl = torch.empty(2, 2, 8, 1000), torch.empty(2, 3, 1000)
    args = {'u_ptr': ud[0], 'delta_ptr': ud[1], 'B_ptr': x_dbl[:, 1:2], 'L': 1000,
            'chunk': 1000}
    launch = _launch(_selective_scan_fwd_kernel, (8, 2, 1), args, {'BLOCK_L': 256})
    cost = timing.launch_cost(launch, ARCHS[90])
    assert cost.rule == 'scan blocks' and cost.steps == 4            # ceil(1000 / 256)
    # The next block's loads overlap this block's scan (prefetch): the longer of the two.
    assert cost.chain_s == pytest.approx(4 * max(timing.HBM_ROUND_TRIP_S,
                                                 timing.BLOCK_EXCHANGE_S))
    assert cost.bytes == ud.nbytes + x_dbl.nbytes                     # each storage once
    chunked = _launch(_selective_scan_fwd_kernel, (8, 2, 4), dict(args, chunk=300),
                      {'BLOCK_L': 256})
    assert timing.launch_cost(chunked, ARCHS[90]).steps == 2          # ceil(300 / 256)


def test_fusion_rule_reads_the_halo_again_only_when_neighbours_left_l2():
    h, out = torch.empty(1, 4, 56, 64), torch.empty(1, 4, 56, 64)
    launch = _launch(_state_fusion_fwd_kernel, (28, 1, 1), {'h_ptr': h, 'out_ptr': out, 'H': 56,
                                                            'W': 64},
                     {'HAS_OBS': False, 'BLOCK_C': 1, 'BLOCK_P': 512})
    cached = timing.launch_cost(launch, ARCHS[90])
    assert cached.bytes == 2 * h.nbytes and cached.steps == 3        # one step per dilation
    assert cached.chain_s == pytest.approx(timing.HBM_ROUND_TRIP_S
                                           + 2 * timing.CACHED_ROUND_TRIP_S)
    evicted = timing.launch_cost(launch, dataclasses.replace(ARCHS[90], l2_bytes=0))
    # A tile is 512 / 64 = 8 whole rows, read with 2 x 5 halo rows; no column halo.
    assert evicted.bytes == h.nbytes * 18 // 8 + out.nbytes


def test_border_rule_counts_the_folded_rows_of_every_tap():
    # Centre 1; per dilation d, rows of d + 1 loads each: 4 corners and the 2 taps above and
    # below of d + 1 rows, the 2 taps left and right of one row.
    assert timing._border_loop_trips() == 1 + (6 * 2 + 2) + (6 * 4 + 2) + (6 * 6 + 2)


def test_tap_sums_rule_walks_its_chunk_then_reduces_the_sums_together():
    dy, h = torch.empty(2, 4, 50, 84), torch.empty(2, 4, 50, 84)
    launch = _launch(_state_fusion_tap_sums_kernel, (2, 8, 1),
                     {'dy_ptr': dy, 'h_ptr': h, 'C_ptr': h, 'H': 50, 'W': 84},
                     {'HAS_OBS': False, 'N_TAPS': 25, 'TILES': 32, 'BLOCK_P': 128})
    cost = timing.launch_cost(launch, ARCHS[90])
    # 4200 pixels: a full chunk of 32 steps, then one joint reduction.
    assert cost.steps == 32 + timing.TAP_SUMS_EXCHANGES
    assert cost.chain_s == pytest.approx(32 * timing.HBM_ROUND_TRIP_S
                                         + timing.TAP_SUMS_EXCHANGES * timing.BLOCK_EXCHANGE_S)
    assert cost.bytes == dy.nbytes + h.nbytes


def test_byte_floor_and_release_times():
    elements = 128 * 128 * 56 * 56
    assert timing.floor_bytes('sasf', 'forward', SHAPES['cls'], torch.float32) == 20 * elements
    # bf16: u, delta, y in 2 bytes, the float32 states h written and read in 4.
    assert timing.floor_bytes('sasf', 'forward', SHAPES['cls'], torch.bfloat16) == 14 * elements
    assert timing.release_ms('sasf', 'cls', torch.float32, 'forward') == 4.27
    assert timing.release_ms('sasf', 'cls', torch.float32, 'backward') == 15.06   # fwd+bwd
    assert timing.release_ms('sasf', 'cls', torch.bfloat16, 'forward') is None
