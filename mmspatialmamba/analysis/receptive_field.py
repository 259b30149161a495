"""Effective receptive fields (ERF) as RepLKNet measures them, and the area ratios it reports.

RepLKNet (Ding et al., "Scaling Up Your Kernels to 31x31", CVPR 2022, section 5 and its
``erf/`` scripts) measures how much each input pixel contributes to the centre of a feature
map:

1. for each image, the gradient of ``relu(out[:, :, h // 2, w // 2]).sum()`` (the centre of a
   stage's output, summed over channels) with respect to the normalised input image;
2. its magnitude summed over the three colour channels, averaged over N images;
3. ``log10(average + 1)`` rescaled to a maximum of 1 (:func:`erf_display`): the map that is
   drawn and from which the area ratios are read;
4. for a threshold t (20, 30, 50, 99%), the smallest square centred on the image that holds at
   least a fraction t of the map's sum, as a fraction of the image's area (:func:`area_ratios`). A
   small ratio at 99% means a small receptive field; a large ratio at 20% means the
   contribution is spread out rather than concentrated at the centre.

Two details differ from RepLKNet's published script, on purpose: step 2 takes the absolute
gradient (RepLKNet's script keeps only the positive part, ``relu(grad)``), so pixels that
lower the centre's response count too; and the squares of step 4 start at side 1 (RepLKNet's
at 3) and grow up to the whole image (RepLKNet's stop one short of it), so every threshold
has an answer.
"""
import os
import os.path as osp
import time
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.utils import ProgressBar
from torch import Tensor

from ..errors import BadInputError, MissingFileError

AREA_THRESHOLDS: Tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)

# Mean and std (RGB, 0-255) of the ImageNet images that every checkpoint compared here was
# trained on; mmdet's and mmseg's Swin and ResNet configs normalise with the same values.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def find_images(paths: Sequence[str], num: Optional[int] = None) -> List[str]:
    """Image files named by ``paths`` (files, or folders whose images are taken sorted by name).

    Args:
        paths: Image files and folders.
        num: Keep the first ``num``; None keeps all.

    Returns:
        Paths of image files (suffixes :data:`IMAGE_SUFFIXES`), in the order given.

    Raises:
        MissingFileError: If a path does not exist.
        BadInputError: If no image is found, or fewer than ``num``.
    """
    found: List[str] = []
    for path in paths:
        if osp.isdir(path):
            found += [osp.join(path, name) for name in sorted(os.listdir(path))
                      if name.lower().endswith(IMAGE_SUFFIXES)]
        elif osp.isfile(path):
            found.append(path)
        else:
            raise MissingFileError(f'image or folder {path!r} does not exist')
    if not found:
        raise BadInputError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {list(paths)}')
    if num is not None:
        if num < 1:
            raise BadInputError(f'the number of images must be at least 1, got {num}')
        if num > len(found):
            raise BadInputError(f'asked for {num} images, more than the {len(found)} found in '
                             f'{list(paths)}; ask for at most {len(found)} or give more images')
        found = found[:num]
    return found


def read_image(path: str, size: int) -> Tensor:
    """Read an image as the networks see it: RGB, shorter side resized to ``size`` (bilinear),
    centre-cropped to ``size`` x ``size``, normalised with the ImageNet mean and std.

    Args:
        path: Image file; grayscale images are repeated to three channels.
        size: Side of the square input, in pixels.

    Returns:
        (3, size, size) float32.

    Raises:
        BadInputError: If the file cannot be read as an image.
    """
    try:
        rgb = mmcv.imread(path, flag='color', channel_order='rgb')
    except cv2.error as error:  # mmcv converts the colours of what cv2 could not decode
        raise BadInputError(f'{path!r} could not be read as an image ({error})') from None
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    rgb = mmcv.imresize(rgb, (max(size, round(width * scale)), max(size, round(height * scale))))
    top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    rgb = rgb[top:top + size, left:left + size].astype(np.float32)
    rgb = (rgb - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def centre_input_gradient(stage_output: Callable[[Tensor], Tensor], image: Tensor) -> Tensor:
    """Contribution of each input pixel to the centre of one image's feature map.

    ``|d relu(out[0, :, h // 2, w // 2]).sum() / d image|``, summed over colour channels
    (steps 1-2 of the module docstring).

    Args:
        stage_output: Maps a (1, 3, H, W) image to a (1, C, h, w) feature map.
        image: (3, H, W), normalised.

    Returns:
        (H, W) float32, non-negative.

    Raises:
        ValueError: If ``stage_output`` does not return a 4-d (1, C, h, w) tensor.
    """
    image = image[None].clone().requires_grad_(True)
    out = stage_output(image)
    if not isinstance(out, Tensor) or out.dim() != 4:
        raise ValueError(f'stage_output must return a (1, C, h, w) tensor, got '
                         f'{getattr(out, "shape", type(out).__name__)}')
    centre = torch.relu(out[:, :, out.shape[2] // 2, out.shape[3] // 2]).sum()
    grad, = torch.autograd.grad(centre, image)
    return grad[0].abs().sum(0)


class MeanGradient(NamedTuple):
    """What :func:`mean_centre_gradient` returns.

    ``gradient``: (H, W) float32, the mean over the images. ``seconds``: wall-clock seconds per
    image (forward + backward). ``cpu_seconds``: this process's CPU seconds per image, all
    threads together (less sensitive than wall time to other jobs on a shared machine).
    """
    gradient: Tensor
    seconds: float
    cpu_seconds: float


def mean_centre_gradient(stage_output: Callable[[Tensor], Tensor], images: Sequence[Tensor],
                         progress: bool = True) -> MeanGradient:
    """:func:`centre_input_gradient` averaged over ``images``, with the time per image.

    Args:
        stage_output: As for :func:`centre_input_gradient`.
        images: Each (3, H, W), all the same size.
        progress: Show a progress bar (mmengine's) on stdout.

    Raises:
        ValueError: If ``images`` is empty.
    """
    if not images:
        raise ValueError('need at least one image')
    total = torch.zeros(images[0].shape[1:])
    bar = ProgressBar(len(images)) if progress else None
    start, cpu_start = time.perf_counter(), time.process_time()
    for image in images:
        total += centre_input_gradient(stage_output, image)
        if bar is not None:
            bar.update()
    seconds = (time.perf_counter() - start) / len(images)
    cpu_seconds = (time.process_time() - cpu_start) / len(images)
    if bar is not None:
        bar.file.write('\n')
    return MeanGradient(total / len(images), seconds, cpu_seconds)


def erf_display(mean_gradient: Tensor) -> np.ndarray:
    """``log10(mean_gradient + 1)`` rescaled to a maximum of 1 (step 3), as a float64 array.

    Raises:
        ValueError: If the gradient is zero everywhere (the centre does not depend on the
            input, e.g. a ReLU output that is zero for every image).
    """
    data = np.log10(mean_gradient.double().numpy() + 1)
    peak = data.max()
    if not peak > 0:
        raise ValueError('the gradient is zero everywhere: the centre of the feature map does '
                         'not respond to these images (all its channels are <= 0)')
    return data / peak


def area_ratios(erf: np.ndarray, thresholds: Iterable[float] = AREA_THRESHOLDS
                ) -> Dict[float, float]:
    """For each threshold t, the area of the smallest centred square holding at least a
    fraction t of ``erf``'s sum, over the area of ``erf`` (step 4).

    Squares have odd sides 1, 3, 5, ... around ``(H // 2, W // 2)``, clipped to the map, and
    grow until they cover it.

    Args:
        erf: (H, W), non-negative, with a positive sum (e.g. from :func:`erf_display`).
        thresholds: Fractions in (0, 1].

    Returns:
        ``{t: area ratio in (0, 1]}``.

    Raises:
        ValueError: On a map that is not 2-d, is negative somewhere or sums to zero, or on a
            threshold outside (0, 1].
    """
    erf = np.asarray(erf, dtype=np.float64)
    if erf.ndim != 2 or (erf < 0).any() or not erf.sum() > 0:
        raise ValueError(f'erf must be a non-negative (H, W) map with a positive sum, got shape '
                         f'{erf.shape}, min {erf.min() if erf.size else None}')
    thresholds = list(thresholds)
    if any(not 0 < t <= 1 for t in thresholds):
        raise ValueError(f'thresholds must be in (0, 1], got {thresholds}')
    height, width = erf.shape
    cy, cx = height // 2, width // 2
    total = erf.sum()
    steps = max(cy, height - 1 - cy, cx, width - 1 - cx)
    held: List[Tuple[float, float]] = []   # (fraction held, area ratio) per square
    for i in range(steps + 1):
        window = erf[max(cy - i, 0):cy + i + 1, max(cx - i, 0):cx + i + 1]
        held.append((window.sum() / total, window.size / erf.size))
    return {t: next(ratio for fraction, ratio in held if fraction >= t - 1e-12)
            for t in thresholds}
