"""Models: importing this registers every model in mmengine's root MODELS registry."""
from .backbones import ARCH_SETTINGS, MMSpatialMamba, SpatialMamba
from .checkpoint import filter_state_dict
from .classifier import SpatialMambaClassifier

__all__ = ['ARCH_SETTINGS', 'MMSpatialMamba', 'SpatialMamba', 'SpatialMambaClassifier',
           'filter_state_dict']
