"""Narrow fixes for the tested stack (torch 2.13, mmengine 0.10.7); see ../shared/STACK.md.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls
``torch.load`` without the argument, so resuming from an mmengine checkpoint (which pickles
``HistoryBuffer`` and numpy objects in ``message_hub``) fails with ``UnpicklingError``. We
re-register mmengine's local-file loader to load with ``weights_only=False``: local checkpoint
files are trusted input here, as they were under torch < 2.6.
"""
import os

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint file as mmengine 0.10.7 did under torch < 2.6."""
    if not os.path.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint {filename!r} does not exist; check the path (relative paths are taken '
            'from the current directory). For a backbone pretrained in a config, set '
            '--cfg-options model.backbone.init_cfg.checkpoint=PATH, or init_cfg=None to train '
            'from scratch')
    return torch.load(filename, map_location=map_location, weights_only=False)
