"""Building blocks of Spatial-Mamba."""
from .blocks import ConvNormAct, Downsample, Mlp, SpatialMambaBlock, Stem
from .sasf import StateFusion, StructureAwareSSM

__all__ = ['ConvNormAct', 'Downsample', 'Mlp', 'SpatialMambaBlock', 'Stem', 'StateFusion',
           'StructureAwareSSM']
