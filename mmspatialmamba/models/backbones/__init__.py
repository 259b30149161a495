"""Backbones."""
from .spatial_mamba import MMSpatialMamba, SpatialMamba

__all__ = ['MMSpatialMamba', 'SpatialMamba']
