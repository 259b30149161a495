"""The single registration point: mmengine's root ``MODELS`` registry.

mmdet's and mmseg's registries are children of mmengine's root, and an unscoped lookup falls
back to the root, so one registration here makes ``type='SpatialMamba'`` resolve from mmdet
and mmseg configs alike without this package importing either toolkit.
"""
from mmengine.registry import MODELS

__all__ = ['MODELS']
