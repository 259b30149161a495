"""Compile every Triton kernel the CUDA path launches for sm_80/86/89/90, without a GPU.

Runs ``structure_aware_ssm`` (sasf), ``selective_scan`` and ``state_fusion`` forward and
backward at the tasks' shapes on fake CUDA tensors, compiles each launch with Triton and
ptxas (both in the triton wheel) and prints, per kernel and architecture, grid, warps,
registers, spills, shared memory, resident blocks per SM and a modelled time (bytes at the
board's bandwidth, serial depth); per pass, the modelled total against the byte floor and the
release's measured time. Exit status 1 when a kernel does not compile or breaks a launch
limit (with ``--strict``, also when it spills or fits fewer than 2 programs per SM). How it
works: ``mmspatialmamba.ops.compile_check`` (the time model: its ``timing`` module).

Usage:
    python tools/compile_check.py --quick --strict  # CI, also under other Tritons (docs/gpu.md)
    python tools/compile_check.py            # every arch, op, shape and dtype (by hand; long)
    python tools/compile_check.py --arch 90 --shape det1 det4 --dtype fp32
"""
import argparse
import os
import shutil
import sys
import tempfile
import warnings

# Before triton is imported: the interpreter would replace @triton.jit. Kernels compiled for
# GPUs this machine may not have go to a cache of their own, removed at the end.
os.environ['TRITON_INTERPRET'] = '0'
CACHE = tempfile.mkdtemp(prefix='mmsm_compile_check_')
os.environ['TRITON_CACHE_DIR'] = CACHE
warnings.filterwarnings('ignore', message='TRITON_DEFAULT_FP_FUSION')  # Triton 3.9 notice

from mmspatialmamba.ops.compile_check.report import (FULL, QUICK, check,  # noqa: E402
                                                     parse_selection)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--quick', action='store_true', help='the CI subset, ignoring the options '
                   'below: ' + '; '.join(map(str, QUICK)))
    p.add_argument('--arch', type=int, nargs='+', help=f'compute capabilities {FULL.archs}')
    p.add_argument('--op', nargs='+', help=f'ops {FULL.ops}')
    p.add_argument('--shape', nargs='+', help=f'shapes {FULL.shapes}')
    p.add_argument('--dtype', nargs='+', help=f'activation dtypes {FULL.dtypes}')
    p.add_argument('--strict', action='store_true', help='also fail launches that spill '
                   'registers or fit fewer than 2 programs per SM (the kernels\' goals)')
    args = p.parse_args(argv)
    try:
        selections = QUICK if args.quick else [parse_selection(
            args.arch or FULL.archs, args.op or FULL.ops, args.shape or FULL.shapes,
            args.dtype or FULL.dtypes)]
    except ValueError as e:
        p.error(str(e))
    try:
        failures = check(selections, sys.stdout, strict=args.strict)
    finally:
        shutil.rmtree(CACHE, ignore_errors=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
