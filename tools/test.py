"""Evaluate a checkpoint of a detector (mmdet) or a segmentor (mmseg) with mmengine's Runner.

The toolkit is picked from the config's ``default_scope``. Examples::

    python tools/test.py configs/maskrcnn_spatialmamba_t_coco.py maskrcnn_t.pth --out preds.pkl
    python tools/test.py configs/upernet_spatialmamba_t_ade20k.py upernet_t.pth --tta
    python tools/test.py CONFIG CKPT --show-dir vis      # draw predictions
    bash tools/dist_test.sh CONFIG CKPT 8                # torchrun, 8 GPUs
"""
import argparse

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmspatialmamba  # noqa: F401  (registers the backbone and the safe checkpoint loader)
from mmspatialmamba.apis import (add_debug_argument, check_datasets, config_scope,
                                 drop_pretrained_init, exit_on_user_error, load_config,
                                 setup_launcher, teardown_launcher)
from mmspatialmamba.checkpoint_io import (add_trust_argument, apply_trust_argument,
                                          check_checkpoint_file)
from mmspatialmamba.errors import BadInputError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file, e.g. configs/maskrcnn_spatialmamba_t_coco.py')
    parser.add_argument('checkpoint', help='checkpoint file (mmengine format, state_dict)')
    parser.add_argument('--work-dir', help='where the logs and metrics go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='detection: a .pkl file for the raw predictions; '
                        'segmentation: a folder for the predicted label maps (PNG)')
    parser.add_argument('--show-dir', help='draw predictions into this folder (detection: '
                        'relative paths are under work_dir/<timestamp>/)')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation from the config's tta_model and "
                        'tta_pipeline (UperNet: multi-scale 0.5-1.75 + flip)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys, e.g. test_dataloader.dataset.data_root=...')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (pytorch = torchrun)')
    add_trust_argument(parser)
    add_debug_argument(parser)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    """Load the config and apply the command-line options to it.

    Raises:
        MissingFileError, BadInputError: On a checkpoint that is missing or not a checkpoint
            file, or an option the config does not support.
    """
    check_checkpoint_file(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    scope = config_scope(cfg)
    cfg.load_from = args.checkpoint
    drop_pretrained_init(cfg)

    if args.show_dir:
        if 'visualization' not in cfg.get('default_hooks', {}):
            raise BadInputError('--show-dir needs default_hooks.visualization in the config')
        cfg.default_hooks.visualization.draw = True
        if scope == 'mmdet':
            cfg.default_hooks.visualization.test_out_dir = args.show_dir
        else:
            cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise BadInputError(
                '--tta needs tta_model and tta_pipeline in the config; the UperNet configs have '
                "them. mmdet's DetTTAModel merges boxes only, not masks, so the Mask R-CNN "
                'configs define none')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    if args.out:
        if scope == 'mmdet':
            if not args.out.endswith(('.pkl', '.pickle')):
                raise BadInputError(f'--out {args.out!r}: detection predictions are dumped '
                                    'to a .pkl file')
            metrics = cfg.test_evaluator
            metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
            cfg.test_evaluator = metrics + [dict(type='DumpDetResults', out_file_path=args.out)]
        else:
            cfg.test_evaluator.output_dir = args.out
            cfg.test_evaluator.keep_results = True
    return cfg


def main(argv=None) -> None:
    """Evaluate; bad input ends the tool with one line (exit status 1), unless ``--debug``."""
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        apply_trust_argument(args)
        cfg = build_config(args)
        check_datasets(cfg, ['test'])
        setup_launcher(cfg, args.launcher)
        try:
            runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
            runner.test()
        finally:
            teardown_launcher()


if __name__ == '__main__':
    main()
