"""Synthetic datasets in COCO and ADE20K layouts, and configs that use them (quick start, tests)."""
from .config import use_synthetic_data
from .synthetic import (INSTANCE_CLASSES, SEMANTIC_CLASSES, ade_metainfo, coco_metainfo,
                        make_ade_semantic, make_coco_instances)

__all__ = ['INSTANCE_CLASSES', 'SEMANTIC_CLASSES', 'ade_metainfo', 'coco_metainfo',
           'make_ade_semantic', 'make_coco_instances', 'use_synthetic_data']
