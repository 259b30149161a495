"""Spatial-Mamba ops: selective scan, structure-aware state fusion and the fused SASF core.

Each public function validates its arguments, then runs the PyTorch reference (CPU) or the
Triton kernels (CUDA, or CPU under ``TRITON_INTERPRET=1``); where a kernel cannot compile or
launch on the GPU, the PyTorch reference on that GPU (see :mod:`.dispatch`, :mod:`._fallback`).
"""
from ._validate import KernelFallbackWarning
from .dispatch import selective_scan, state_fusion, structure_aware_ssm

__all__ = ['KernelFallbackWarning', 'selective_scan', 'state_fusion', 'structure_aware_ssm']
