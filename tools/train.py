"""Train a detector (mmdet) or a segmentor (mmseg) from a config, with mmengine's Runner.

The toolkit is picked from the config's ``default_scope``. Examples::

    python tools/train.py configs/maskrcnn_spatialmamba_t_coco.py
    python tools/train.py configs/upernet_spatialmamba_t_ade20k.py --amp --auto-scale-lr
    python tools/train.py CONFIG --resume                      # latest complete checkpoint
    python tools/train.py CONFIG --resume work_dirs/x/iter_8000.pth
    bash tools/dist_train.sh CONFIG 8                          # torchrun, 8 GPUs (DDP)
"""
import argparse

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmspatialmamba  # noqa: F401  (registers the backbone and the safe checkpoint loader)
from mmspatialmamba.apis import (add_debug_argument, check_datasets, exit_on_user_error,
                                 load_config, resolve_pretrained, setup_launcher,
                                 teardown_launcher)
from mmspatialmamba.checkpoint_io import add_trust_argument, apply_trust_argument
from mmspatialmamba.engine import make_resumable, prepare_resume
from mmspatialmamba.errors import BadInputError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file, e.g. configs/maskrcnn_spatialmamba_t_coco.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true',
                        help='float16 mixed precision (AmpOptimWrapper, CUDA only)')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CKPT',
                        help='resume from CKPT, or without a value from the latest complete '
                        'checkpoint in the work dir')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the LR by (GPUs x batch) / the config's "
                        'auto_scale_lr.base_batch_size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys, e.g. '
                        'model.backbone.init_cfg.checkpoint=/path/to/in1k.pth')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (pytorch = torchrun)')
    add_trust_argument(parser)
    add_debug_argument(parser)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line options to it.

    Raises:
        BadInputError: On an option the machine or the config does not support.
    """
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if args.amp:
        if not torch.cuda.is_available():
            raise BadInputError('--amp needs a CUDA GPU (float16 autocast through '
                                'AmpOptimWrapper); run without --amp on CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise BadInputError('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) '
                                'in the config (N = the total batch the LR was set for)')
        cfg.auto_scale_lr.enable = True
    if args.resume is not None:
        prepare_resume(cfg, args.resume)
    return cfg


def main(argv=None) -> None:
    """Train; bad input ends the tool with one line (exit status 1), unless ``--debug``."""
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        apply_trust_argument(args)
        cfg = build_config(args)
        resolve_pretrained(cfg, weights_from_checkpoint=bool(cfg.get('load_from')))
        check_datasets(cfg, ['train', 'val'] if cfg.get('val_dataloader') else ['train'])
        setup_launcher(cfg, args.launcher)
        try:
            make_resumable(cfg)
            runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
            runner.train()
        finally:
            teardown_launcher()


if __name__ == '__main__':
    main()
