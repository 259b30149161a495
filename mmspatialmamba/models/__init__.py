"""Models: importing this registers every model in mmengine's root MODELS registry."""
from .backbones import MMSpatialMamba, SpatialMamba
from .checkpoint import filter_state_dict
from .classifier import SpatialMambaClassifier
from .trunk import ARCH_SETTINGS

__all__ = ['ARCH_SETTINGS', 'MMSpatialMamba', 'SpatialMamba', 'SpatialMambaClassifier',
           'filter_state_dict']
