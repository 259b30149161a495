"""Inference helpers and the checks run by tools/train.py and tools/test.py."""
from .inference import draw_result, inference, init_model
from .preflight import check_datasets, check_pretrained, config_scope, setup_launcher

__all__ = ['check_datasets', 'check_pretrained', 'config_scope', 'draw_result', 'inference',
           'init_model', 'setup_launcher']
