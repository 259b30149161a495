"""Synthetic datasets in COCO and ADE20K layouts (quick start, tests)."""
from .synthetic import (INSTANCE_CLASSES, SEMANTIC_CLASSES, ade_metainfo, coco_metainfo,
                        make_ade_semantic, make_coco_instances)

__all__ = ['INSTANCE_CLASSES', 'SEMANTIC_CLASSES', 'ade_metainfo', 'coco_metainfo',
           'make_ade_semantic', 'make_coco_instances']
