"""Run a detector or segmentor on one image and write the drawn result (PNG).

Examples::

    python tools/infer.py configs/maskrcnn_spatialmamba_t_coco.py maskrcnn_t.pth demo.jpg \
        --out demo_det.png
    python tools/infer.py configs/upernet_spatialmamba_t_ade20k.py upernet_t.pth demo.jpg \
        --out demo_seg.png
"""
import argparse

from mmengine.config import DictAction

from mmspatialmamba.apis import (add_debug_argument, check_image, draw_result,
                                 exit_on_user_error, inference, init_model)
from mmspatialmamba.checkpoint_io import add_trust_argument, apply_trust_argument


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file (mmdet or mmseg)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', required=True, help='output image, e.g. result.png')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw instances scoring at least this')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the label overlay')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys')
    add_trust_argument(parser)
    add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    """Infer; bad input ends the tool with one line (exit status 1), unless ``--debug``."""
    args = parse_args(argv)
    with exit_on_user_error(args.debug):
        apply_trust_argument(args)
        check_image(args.image)  # before the model is built: a bad image fails at once
        model = init_model(args.config, args.checkpoint, args.device, args.cfg_options)
        result = inference(model, args.image)
        draw_result(model, args.image, result, args.out, args.score_thr, args.opacity)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
