"""Loading an mmdet/mmseg config for the tools: its toolkit, its work dir, its weights' source.

Every tool and API that reads a config goes through here (``tools/train.py``, ``test.py``,
``infer.py``, ``get_flops.py``, ``benchmark.py``, :func:`~.inference.init_model`,
:func:`~mmspatialmamba.analysis.build_from_config`), so each rule below is written once:

* the toolkit is the config's ``default_scope``, 'mmdet' or 'mmseg' (:func:`config_scope`);
* the work dir is ``--work-dir``, else the config's, else ``./work_dirs/<config name>``
  (:func:`load_config`);
* when the weights come from a checkpoint, the backbone's ImageNet ``init_cfg`` is dropped,
  so its file need not exist (:func:`drop_pretrained_init`, :func:`resolve_pretrained`).
"""
import logging
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..errors import BadInputError, MissingFileError

TASKS = {'mmdet': 'detection', 'mmseg': 'segmentation'}


def config_scope(cfg: Config) -> str:
    """The config's toolkit, ``'mmdet'`` or ``'mmseg'``, from ``default_scope``.

    Raises:
        BadInputError: If ``default_scope`` is neither.
    """
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise BadInputError(f'config default_scope is {scope!r}; these tools run mmdet and mmseg '
                            f"configs (default_scope 'mmdet' or 'mmseg'), e.g. "
                            'configs/maskrcnn_spatialmamba_t_coco.py')
    return scope


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read a config file, apply command-line overrides, check its toolkit, set its work dir.

    mmengine's ``Config.fromfile`` also imports the config's ``custom_imports`` (which
    registers the backbone).

    Args:
        path: Config file, e.g. ``configs/maskrcnn_spatialmamba_t_coco.py``.
        cfg_options: ``--cfg-options`` overrides, merged into the config.
        work_dir: Where logs and checkpoints go; None keeps the config's ``work_dir`` or, if
            it has none, uses ``./work_dirs/<config file name without .py>``.

    Returns:
        The config, with ``work_dir`` set.

    Raises:
        MissingFileError: If ``path`` is not a file.
        BadInputError: If the config's ``default_scope`` is neither 'mmdet' nor 'mmseg'.
    """
    if not osp.isfile(path):
        raise MissingFileError(f'config {path!r} not found; pass a config file such as '
                               'configs/maskrcnn_spatialmamba_t_coco.py')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    config_scope(cfg)
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def drop_pretrained_init(cfg: Config) -> Optional[dict]:
    """Drop the backbone's ``init_cfg``: the weights come from a checkpoint (or do not matter).

    Used where the model is then loaded from a checkpoint (testing, inference) or where
    weights are irrelevant (FLOP counting, timing), so the ImageNet file need not exist.

    Returns:
        The dropped ``init_cfg``, or None if the backbone had none.
    """
    backbone = cfg.model.get('backbone') or {}
    init_cfg = backbone.get('init_cfg')
    if init_cfg:
        backbone.init_cfg = None
    return init_cfg or None


def is_remote(path: str) -> bool:
    """Whether a path in a config is a URL (``s3://...``, ``https://...``), not checked on disk."""
    return '://' in path


def resolve_pretrained(cfg: Config, weights_from_checkpoint: bool = False) -> None:
    """Make sure the backbone's ImageNet checkpoint exists, or drop it if a checkpoint replaces it.

    Runs before the Runner builds anything, so the user learns about a missing ImageNet file
    in a second rather than after the dataset has been indexed. When the run resumes or loads
    a checkpoint (``weights_from_checkpoint``), those weights replace the ImageNet ones: a
    missing ImageNet file then only drops the backbone's ``init_cfg`` (edits ``cfg``), with a
    warning. An ImageNet file that exists is left in the config either way.

    Raises:
        MissingFileError: If the file is missing and no checkpoint supplies the weights,
            naming the file, the option that sets it and how to train from scratch.
    """
    init_cfg = (cfg.model.get('backbone') or {}).get('init_cfg')
    if not isinstance(init_cfg, dict) or init_cfg.get('type') != 'Pretrained':
        return
    path = init_cfg.get('checkpoint')
    if not path or is_remote(path) or osp.isfile(path):
        return
    if weights_from_checkpoint:
        drop_pretrained_init(cfg)
        print_log(f'ImageNet checkpoint {path!r} not found; not needed, the weights come from '
                  'the resumed or loaded checkpoint', logger='current', level=logging.WARNING)
        return
    raise MissingFileError(
        f'ImageNet-pretrained backbone checkpoint {path!r} not found (relative paths are '
        f'taken from {os.getcwd()}). Download the Spatial-Mamba ImageNet checkpoint of '
        'this variant (links in the README) and put it there, or pass '
        '--cfg-options model.backbone.init_cfg.checkpoint=/path/to/checkpoint.pth; '
        'to train from scratch instead (not the published recipe) pass '
        '--cfg-options model.backbone.init_cfg=None')
