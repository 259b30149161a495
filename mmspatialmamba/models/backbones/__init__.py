"""Backbones."""
from .spatial_mamba import ARCH_SETTINGS, MMSpatialMamba, SpatialMamba

__all__ = ['ARCH_SETTINGS', 'MMSpatialMamba', 'SpatialMamba']
