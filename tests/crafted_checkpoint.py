"""A checkpoint that runs code when unpickled, for the safe-loading tests."""
import os.path as osp
from collections import OrderedDict
from typing import Tuple

import torch


class WritesMarker:
    """Unpickling this calls ``open(path, 'w')``: the file appears if the pickle is executed."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


def save_crafted(directory: str) -> Tuple[str, str]:
    """Write ``directory/crafted.pth``; return its path and the marker path it would create."""
    path, marker = osp.join(directory, 'crafted.pth'), osp.join(directory, 'MARKER')
    torch.save({'meta': {'epoch': 0, 'iter': 0}, 'state_dict': OrderedDict(),
                'payload': WritesMarker(marker)}, path)
    return path, marker
