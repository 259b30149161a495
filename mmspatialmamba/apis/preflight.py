"""Checks and config edits that ``tools/train.py`` and ``tools/test.py`` run before the Runner.

They turn the errors a user meets first (no dataset, no ImageNet checkpoint, a CPU-only
multi-process run) into messages that name the cause and the fix, instead of a traceback from
deep inside a dataset or ``torch.cuda``.
"""
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

TASKS = {'mmdet': 'detection', 'mmseg': 'segmentation'}

_LAYOUT = {
    'mmdet': (
        'the mmdet COCO layout:\n'
        '  data/coco/annotations/instances_train2017.json\n'
        '  data/coco/annotations/instances_val2017.json\n'
        '  data/coco/train2017/*.jpg\n'
        '  data/coco/val2017/*.jpg\n'
        'Put COCO there (a symlink works: ln -s /path/to/coco data/coco) or point the config '
        'elsewhere, e.g. --cfg-options train_dataloader.dataset.data_root=/path/to/coco/ '
        'val_dataloader.dataset.data_root=/path/to/coco/ '
        'test_dataloader.dataset.data_root=/path/to/coco/ '
        'val_evaluator.ann_file=/path/to/coco/annotations/instances_val2017.json '
        'test_evaluator.ann_file=/path/to/coco/annotations/instances_val2017.json'),
    'mmseg': (
        'the mmseg ADE20K layout:\n'
        '  data/ade/ADEChallengeData2016/images/training/*.jpg\n'
        '  data/ade/ADEChallengeData2016/images/validation/*.jpg\n'
        '  data/ade/ADEChallengeData2016/annotations/training/*.png\n'
        '  data/ade/ADEChallengeData2016/annotations/validation/*.png\n'
        'Put ADE20K there (a symlink works: ln -s /path/to/ADEChallengeData2016 '
        'data/ade/ADEChallengeData2016) or point the config elsewhere, e.g. --cfg-options '
        'train_dataloader.dataset.data_root=/path/to/ADEChallengeData2016 '
        'val_dataloader.dataset.data_root=/path/to/ADEChallengeData2016 '
        'test_dataloader.dataset.data_root=/path/to/ADEChallengeData2016'),
}


def config_scope(cfg: Config) -> str:
    """The config's toolkit, ``'mmdet'`` or ``'mmseg'``, from ``default_scope``.

    Raises:
        ValueError: If ``default_scope`` is neither.
    """
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'config default_scope is {scope!r}; these tools run mmdet and mmseg '
                         f"configs (default_scope 'mmdet' or 'mmseg'), e.g. "
                         'configs/maskrcnn_spatialmamba_t_coco.py')
    return scope


def _is_remote(path: str) -> bool:
    return '://' in path


def _join(root: Optional[str], path: str) -> str:
    return path if not root or osp.isabs(path) or _is_remote(path) else osp.join(root, path)


def _leaf_datasets(dataset: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """Walk dataset wrappers (``dataset=``/``datasets=``) down to the datasets that read files."""
    if 'datasets' in dataset:
        for i, child in enumerate(dataset['datasets']):
            yield from _leaf_datasets(child, f'{key}.datasets.{i}')
    elif 'dataset' in dataset:
        yield from _leaf_datasets(dataset['dataset'], f'{key}.dataset')
    else:
        yield key, dataset


def missing_dataset_paths(cfg: Config, splits: Sequence[str]) -> List[Tuple[str, str]]:
    """Files and folders the dataloaders (and COCO evaluators) of ``splits`` need but lack.

    Args:
        cfg: A loaded config.
        splits: Any of ``'train'``, ``'val'``, ``'test'``.

    Returns:
        ``(config key, path)`` for each missing path; remote paths (``s3://...``) are skipped.
    """
    missing = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for key, dataset in _leaf_datasets(loader['dataset'], f'{split}_dataloader.dataset'):
            root = dataset.get('data_root')
            needed = []
            if dataset.get('ann_file'):
                needed.append((f'{key}.ann_file', _join(root, dataset['ann_file'])))
            for name, prefix in (dataset.get('data_prefix') or {}).items():
                if prefix:
                    needed.append((f'{key}.data_prefix.{name}', _join(root, prefix)))
            if not needed and root:
                needed.append((f'{key}.data_root', root))
            missing += [(k, p) for k, p in needed if not _is_remote(p) and not osp.exists(p)]
        evaluators = cfg.get(f'{split}_evaluator') if split != 'train' else None
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for i, evaluator in enumerate(evaluators or []):
            ann_file = evaluator.get('ann_file')
            if ann_file and not _is_remote(ann_file) and not osp.exists(ann_file):
                suffix = '' if len(evaluators) == 1 else f'.{i}'
                missing.append((f'{split}_evaluator{suffix}.ann_file', ann_file))
    return missing


def check_datasets(cfg: Config, splits: Sequence[str]) -> None:
    """Raise a clear error if a dataset that ``splits`` need is not on disk.

    Raises:
        FileNotFoundError: Naming every missing path with its config key, the expected
            layout and how to point the config elsewhere.
    """
    missing = missing_dataset_paths(cfg, splits)
    if missing:
        lines = '\n'.join(f'  {path}   (config key {key})' for key, path in missing)
        raise FileNotFoundError(
            f'dataset not found (relative paths are taken from {os.getcwd()}):\n{lines}\n'
            f'Expected {_LAYOUT[config_scope(cfg)]}')


def check_pretrained(cfg: Config, weights_from_checkpoint: bool = False) -> None:
    """Stop early if the backbone's ``Pretrained`` checkpoint file is missing.

    Runs before the Runner builds anything, so the user learns about a missing ImageNet file
    in a second rather than after the dataset has been indexed. When the run resumes or loads
    a checkpoint (``weights_from_checkpoint``), those weights replace the ImageNet ones anyway:
    a missing ImageNet file then only drops the backbone's ``init_cfg``, with a warning.

    Raises:
        FileNotFoundError: Naming the file, the option that sets it and how to train from
            scratch.
    """
    backbone = cfg.model.get('backbone') or {}
    init_cfg = backbone.get('init_cfg')
    if not isinstance(init_cfg, dict) or init_cfg.get('type') != 'Pretrained':
        return
    path = init_cfg.get('checkpoint')
    if not path or _is_remote(path) or osp.isfile(path):
        return
    if weights_from_checkpoint:
        backbone.init_cfg = None
        print_log(f'ImageNet checkpoint {path!r} not found; not needed, the weights come from '
                  'the resumed or loaded checkpoint', logger='current', level=30)
        return
    raise FileNotFoundError(
        f'ImageNet-pretrained backbone checkpoint {path!r} not found (relative paths are '
        f'taken from {os.getcwd()}). Download the Spatial-Mamba ImageNet checkpoint of '
        'this variant (links in the README) and put it there, or pass '
        '--cfg-options model.backbone.init_cfg.checkpoint=/path/to/checkpoint.pth; '
        'to train from scratch instead (not the published recipe) pass '
        '--cfg-options model.backbone.init_cfg=None')


def _replace_syncbn(node: object) -> int:
    """Replace ``type='SyncBN'`` by ``'BN'`` everywhere in a config tree; count replacements."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _replace_syncbn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _replace_syncbn(value)
    return count


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Set ``cfg.launcher`` and, for a multi-process run without CUDA, make it work on CPU.

    mmengine 0.10.7 assumes CUDA for distributed runs: its ``init_dist`` calls
    ``torch.cuda.set_device``, the Runner gives DDP ``device_ids=[LOCAL_RANK]``, and SyncBN
    only works on GPU. Without CUDA and with ``launcher='pytorch'`` (torchrun) this creates
    the gloo process group itself (mmengine then skips ``init_dist``), wraps with
    ``device_ids=None`` and turns SyncBN into BN in the model config.

    Raises:
        ValueError: For 'slurm' or 'mpi' without CUDA (use torchrun), or an unknown launcher.
    """
    if launcher not in ('none', 'pytorch', 'slurm', 'mpi'):
        raise ValueError(f"unknown launcher {launcher!r}; use 'none', 'pytorch', 'slurm' or "
                         "'mpi'")
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'--launcher {launcher} needs CUDA; for a multi-process CPU run use '
                         'torchrun: bash tools/dist_train.sh CONFIG NPROC (--launcher pytorch)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.env_cfg = ConfigDict(cfg.get('env_cfg') or {})
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    replaced = _replace_syncbn(cfg.model)
    if replaced:
        print_log(f'no CUDA: {replaced} SyncBN norm config(s) replaced by BN for the CPU '
                  'multi-process run (SyncBN needs GPUs)', logger='current', level=30)
