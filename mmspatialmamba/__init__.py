"""mmspatialmamba: Spatial-Mamba (ICLR 2025) as an OpenMMLab backbone.

Importing the package registers ``SpatialMamba`` and ``MM_SpatialMamba`` in mmengine's root
``MODELS`` registry, so configs only need
``custom_imports = dict(imports=['mmspatialmamba'], allow_failed_imports=False)``. It also
makes mmengine load local checkpoints with ``weights_only=True`` (see :mod:`.checkpoint_io`).
Bad input (a file, a config value, an argument) raises :class:`BadInputError` (see
:mod:`.errors`).
"""
import torch

from .errors import BadInputError  # noqa: F401  (public: mmspatialmamba.BadInputError)
from .version import __version__  # noqa: F401

_MIN_TORCH = (2, 4)
if tuple(int(p) for p in torch.__version__.split('.')[:2]) < _MIN_TORCH:
    raise ImportError(f'mmspatialmamba needs torch >= {".".join(map(str, _MIN_TORCH))} '
                      f'(torch.library custom ops), found {torch.__version__}; '
                      'upgrade torch, e.g. pip install torch==2.13.0')

from . import checkpoint_io  # noqa: E402,F401  (registers mmengine's safe local loader)
from . import engine  # noqa: E402,F401  (registers the resume hook, seeded data, atomic saving)
from .models import *  # noqa: E402,F401,F403
