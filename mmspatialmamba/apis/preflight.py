"""The dataset check that ``tools/train.py`` and ``tools/test.py`` run before the Runner.

It turns the error a user meets first, a dataset that is not on disk, into a message that
names every missing path, the expected layout and the fix, instead of a traceback from deep
inside a dataset. (The ImageNet checkpoint is checked by
:func:`~mmspatialmamba.apis.config.resolve_pretrained`.)
"""
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from ..errors import MissingFileError
from .config import config_scope, is_remote

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


def _join(root: Optional[str], path: str) -> str:
    return path if not root or osp.isabs(path) or is_remote(path) else osp.join(root, path)


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
            missing += [(k, p) for k, p in needed if not is_remote(p) and not osp.exists(p)]
        evaluators = cfg.get(f'{split}_evaluator') if split != 'train' else None
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for i, evaluator in enumerate(evaluators or []):
            ann_file = evaluator.get('ann_file')
            if ann_file and not is_remote(ann_file) and not osp.exists(ann_file):
                suffix = '' if len(evaluators) == 1 else f'.{i}'
                missing.append((f'{split}_evaluator{suffix}.ann_file', ann_file))
    return missing


def check_datasets(cfg: Config, splits: Sequence[str]) -> None:
    """Raise a clear error if a dataset that ``splits`` need is not on disk.

    Raises:
        MissingFileError: Naming every missing path with its config key, the expected
            layout and how to point the config elsewhere.
    """
    missing = missing_dataset_paths(cfg, splits)
    if missing:
        lines = '\n'.join(f'  {path}   (config key {key})' for key, path in missing)
        raise MissingFileError(
            f'dataset not found (relative paths are taken from {os.getcwd()}):\n{lines}\n'
            f'Expected {_LAYOUT[config_scope(cfg)]}')
