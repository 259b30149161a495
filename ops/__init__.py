"""Spatial-Mamba ops: selective scan, structure-aware state fusion and the fused SASF core.

Each public function validates its arguments, then runs the PyTorch reference (CPU) or the
Triton kernels (CUDA, or CPU under ``TRITON_INTERPRET=1``); see :mod:`.dispatch`.
"""
from .dispatch import selective_scan, state_fusion, structure_aware_ssm

__all__ = ['selective_scan', 'state_fusion', 'structure_aware_ssm']
