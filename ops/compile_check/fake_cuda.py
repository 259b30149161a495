"""Tensors that say they live on a CUDA device but hold no memory (no GPU needed).

The compile check runs the public ops on these, so every launcher takes its CUDA branch
(``x.is_cuda``, ``x.device.type == 'cuda'``) and computes the grids, block sizes and strides of
a real CUDA call, while every PyTorch operation in between (``contiguous``, ``sum``, views,
autograd) runs on the ``meta`` device: shapes and strides only, no data, no time.

Why a ``__torch_dispatch__`` wrapper on ``meta`` with a Python ``device`` property: the C++
side (dispatcher, autograd engine) must see ``meta``, because a CPU-only PyTorch cannot open a
CUDA device guard, while Python code must see ``cuda``. A project custom op reaching
:meth:`FakeCudaTensor.__torch_dispatch__` is sent to its CUDA kernel (the real launcher),
not to its fake implementation, so its Triton launches happen.
"""
import contextlib
from typing import Iterator, Sequence

import torch
from torch.utils._pytree import tree_map

from .. import _utils

_CUDA = torch.device('cuda', 0)
_META = torch.device('meta')
# Operator namespaces whose kernels are PyTorch's own; every other namespace (the project's
# custom ops) runs its CUDA implementation.
_TORCH_NAMESPACES = ('aten', 'prim', 'prims')


def _is_cuda_device(device) -> bool:
    return device is not None and torch.device(device).type == 'cuda'


class FakeCudaTensor(torch.Tensor):
    """A ``meta`` tensor that reports ``device == cuda:0``; see the module docstring."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        return torch.Tensor._make_wrapper_subclass(
            cls, elem.shape, strides=elem.stride(), storage_offset=elem.storage_offset(),
            dtype=elem.dtype, device=_META, requires_grad=elem.requires_grad)

    def __init__(self, elem: torch.Tensor):
        self.elem = elem

    @property
    def device(self) -> torch.device:
        return _CUDA

    @property
    def is_cuda(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f'FakeCudaTensor({tuple(self.shape)}, {self.dtype}, stride={self.stride()})'

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace not in _TORCH_NAMESPACES:
            cuda = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
            return func.redispatch(cuda, *args, **kwargs)
        if _is_cuda_device(kwargs.get('device')):
            kwargs = {**kwargs, 'device': _META}
        args, kwargs = tree_map(lambda t: t.elem if isinstance(t, cls) else t, (args, kwargs))
        return _wrap(func(*args, **kwargs))


def _wrap(out):
    return tree_map(lambda t: FakeCudaTensor(t) if type(t) is torch.Tensor else t, out)


def fake_cuda(shape: Sequence[int], dtype: torch.dtype = torch.float32,
              requires_grad: bool = False) -> FakeCudaTensor:
    """A contiguous :class:`FakeCudaTensor` of ``shape`` and ``dtype``."""
    elem = torch.empty(*shape, dtype=dtype, device=_META)
    return FakeCudaTensor(elem).requires_grad_(requires_grad)


@contextlib.contextmanager
def fake_cuda_device(capability: int) -> Iterator[None]:
    """Within the block, the ops' output allocator (``ops/_utils.py``: every buffer a
    launcher allocates comes from it) returns :class:`FakeCudaTensor` s, the launch
    sizing sees a device of compute capability ``sm_<capability>``, and kernels launch
    without selecting a CUDA device (``_utils.launch_device``: there is no CUDA runtime to
    select one in)."""
    real = _utils.new_output, _utils.gpu_capability, _utils.launch_device
    _utils.new_output = lambda *shape, dtype, device: fake_cuda(shape, dtype)
    _utils.gpu_capability = lambda device: divmod(capability, 10)
    _utils.launch_device = lambda device: contextlib.nullcontext()
    try:
        yield
    finally:
        _utils.new_output, _utils.gpu_capability, _utils.launch_device = real
