"""``benchmarks/gpu_check.py`` loaded as a module (``benchmarks/`` is not a package), for the
GPU check's plan and helpers in its tests, and the test ids of the plan's cases."""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from op_utils import case_id as shape_id

ROOT = Path(__file__).resolve().parents[2]


def load_gpu_check() -> ModuleType:
    """The module ``gpu_check`` (loaded once per process)."""
    if 'gpu_check' not in sys.modules:
        spec = importlib.util.spec_from_file_location('gpu_check',
                                                      ROOT / 'benchmarks' / 'gpu_check.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules['gpu_check'] = module
    return sys.modules['gpu_check']


def case_id(case: Any) -> str:
    """A test id for a ``compile_check.cases.Case``: its op, then ``op_utils.case_id`` of its
    shape and dtype, e.g. ``sasf-B2-D128-H200-W336-bf16`` (``-N3`` after W for 3 states)."""
    from mmspatialmamba.ops.compile_check.cases import DTYPES
    s = case.shape
    dims, sizes = ('BDHW', [s.batch, s.dim, s.height, s.width]) if s.d_state == 1 else (
        'BDHWN', [s.batch, s.dim, s.height, s.width, s.d_state])
    return f'{case.op}-{shape_id(dims, sizes, DTYPES[case.dtype])}'
