"""The compile check (``tools/compile_check.py``): Triton's real compiler, no GPU.

The suite runs with ``TRITON_INTERPRET=1`` (conftest.py), which replaces ``@triton.jit``, so
the check runs in subprocesses with ``TRITON_INTERPRET=0``. The quick subset compiles every
kernel of the CUDA path (about 1 minute on 2 cores); the broken-kernel case shows that a
kernel the interpreter would run but the compiler rejects fails the check.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmspatialmamba.ops.compile_check.targets import ARCHS, launch_problems, resident_blocks

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ('_selective_scan_fwd_kernel', '_selective_scan_bwd_kernel', '_state_fusion_fwd_kernel',
           '_state_fusion_bwd_kernel', '_state_fusion_bwd_border_kernel')


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
