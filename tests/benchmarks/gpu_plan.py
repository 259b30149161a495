"""``benchmarks/gpu_check.py`` loaded as a module (``benchmarks/`` is not a package), for the
GPU check's plan and helpers in its tests."""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
