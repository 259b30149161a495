"""Models: importing this registers every model in mmengine's root MODELS registry."""
from .backbones import ARCH_SETTINGS, MMSpatialMamba, SpatialMamba
from .checkpoint import filter_state_dict

__all__ = ['ARCH_SETTINGS', 'MMSpatialMamba', 'SpatialMamba', 'filter_state_dict']
