"""Small synthetic datasets in COCO and ADE20K layouts, for the quick start and the tests.

Images show one to ``max_objects`` large filled circles, rectangles (rotated) and triangles,
apart from each other, on a plain light background. A shape's class shows in its geometry and
in its colour (the class's palette colour, jittered per shape): the data is made to be learnt
from scratch in a few minutes on a CPU (the quick start), so it is distinct rather than hard.

``make_coco_instances`` writes the mmdet COCO layout (``annotations/instances_{split}2017.json``,
``{split}2017/*.jpg``): one annotation per shape with the polygon traced from its mask, its box
and area, plus, in some images, an ``iscrowd=1`` group of small shapes of one class annotated as
one RLE region, as COCO does for crowds (the COCO metric ignores detections on it).

``make_ade_semantic`` writes the mmseg ADE20K layout (``images/{training,validation}/*.jpg``,
``annotations/{training,validation}/*.png``) with ADE20K's label convention: 0 marks "other"
pixels (here thin clutter strokes), to be ignored through ``reduce_zero_label=True``, and class
``k`` of :data:`SEMANTIC_CLASSES` is stored as ``k + 1``.

Both are deterministic functions of their arguments and skip the work when the same data is
already on disk (a ``synthetic.json`` stamp records the arguments).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ..errors import BadInputError

INSTANCE_CLASSES: Tuple[str, ...] = ('circle', 'rectangle', 'triangle')
INSTANCE_PALETTE: List[Tuple[int, int, int]] = [(220, 20, 60), (0, 130, 200), (60, 180, 75)]
SEMANTIC_CLASSES: Tuple[str, ...] = ('background', 'circle', 'rectangle', 'triangle')
SEMANTIC_PALETTE: List[Tuple[int, int, int]] = [(120, 120, 120), (220, 20, 60), (0, 130, 200),
                                               (60, 180, 75)]

_STAMP = 'synthetic.json'
_COCO_SPLITS = {'train': 'train2017', 'val': 'val2017'}
_ADE_SPLITS = {'train': 'training', 'val': 'validation'}


def _shape_polygon(rng: np.random.Generator, kind: int, cx: float, cy: float,
                   size: float) -> np.ndarray:
    """Vertices (K, 2) in pixels of a shape of class ``kind`` with the given centre and size."""
    if kind == 0:  # circle, as a 32-gon so the polygon and the drawn pixels agree
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        r = size / 2
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    angle = rng.uniform(0, np.pi)
    if kind == 1:  # rectangle, aspect 0.4-1, rotated
        w, h = size, size * rng.uniform(0.4, 1.0)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    else:  # triangle: three vertices around a circle with jittered spacing
        t = angle + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
        return np.stack([cx + size / 1.6 * np.cos(t), cy + size / 1.6 * np.sin(t)], axis=1)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ rot.T + np.array([cx, cy])


def _fill(mask_shape: Tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(mask_shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A plain light grey, slightly tinted, with mild noise: (H, W, 3) uint8."""
    level = rng.uniform(150, 230) + rng.uniform(-10, 10, 3)
    img = level + rng.normal(0, 3, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _class_colour(rng: np.random.Generator, kind: int) -> np.ndarray:
    """The BGR colour of a shape of class ``kind``: its palette colour, jittered per shape."""
    rgb = np.asarray(INSTANCE_PALETTE[kind], float) + rng.uniform(-30, 30, 3)
    return np.clip(rgb[::-1], 0, 255)


def _place(rng: np.random.Generator, occupied: np.ndarray, draw) -> np.ndarray:
    """A mask from ``draw()`` that keeps a 2-pixel gap to ``occupied``, or an empty mask.

    Args:
        occupied: (H, W) bool, pixels already taken.
        draw: Returns a candidate (H, W) bool mask at a new random position; tried 20 times.
    """
    blocked = cv2.dilate(occupied.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    for _ in range(20):
        mask = draw()
        if mask.any() and not (mask & blocked).any():
            return mask
    return np.zeros_like(occupied)


def _render(rng: np.random.Generator, height: int, width: int, max_objects: int,
            crowd_prob: float, clutter: bool) -> Tuple[np.ndarray, List[dict], np.ndarray]:
    """Draw one image: a few large shapes, apart from each other, on a plain background.

    Returns:
        The image (H, W, 3) BGR uint8; the objects, each ``dict(kind, mask (H, W) bool,
        crowd)``; a clutter mask (H, W) bool (thin grey strokes over everything).
    """
    image = _background(rng, height, width)
    occupied = np.zeros((height, width), bool)
    objects: List[dict] = []
    side = min(height, width)

    def paint(mask: np.ndarray, kind: int, crowd: bool) -> None:
        if not mask.any():
            return
        colour = _class_colour(rng, kind)
        image[mask] = np.clip(colour + rng.normal(0, 3, (int(mask.sum()), 3)), 0, 255)
        occupied[mask] = True
        objects.append(dict(kind=kind, mask=mask, crowd=crowd))

    def shape(kind: int, low: float, high: float) -> np.ndarray:
        size = rng.uniform(low, high) * side
        cx = rng.uniform(size / 2, width - size / 2)
        cy = rng.uniform(size / 2, height - size / 2)
        return _fill((height, width), _shape_polygon(rng, kind, cx, cy, size))

    def crowd(kind: int) -> np.ndarray:
        """5-8 small shapes of one class, close together."""
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        union = np.zeros((height, width), bool)
        for _ in range(int(rng.integers(5, 9))):
            union |= _fill((height, width), _shape_polygon(
                rng, kind, cx + rng.uniform(-0.1, 0.1) * side,
                cy + rng.uniform(-0.1, 0.1) * side, rng.uniform(0.06, 0.09) * side))
        return union

    if rng.random() < crowd_prob:
        kind = int(rng.integers(len(INSTANCE_CLASSES)))
        paint(_place(rng, occupied, lambda: crowd(kind)), kind, crowd=True)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(len(INSTANCE_CLASSES)))
        paint(_place(rng, occupied, lambda: shape(kind, 0.25, 0.5)), kind, crowd=False)

    clutter_mask = np.zeros((height, width), np.uint8)
    if clutter:
        for _ in range(int(rng.integers(0, 3))):
            p0 = (int(rng.integers(width)), int(rng.integers(height)))
            p1 = (int(rng.integers(width)), int(rng.integers(height)))
            cv2.line(clutter_mask, p0, p1, 1, thickness=max(1, side // 64))
        image[clutter_mask.astype(bool)] = rng.uniform(60, 100)
    return image, objects, clutter_mask.astype(bool)


def _rle(mask: np.ndarray) -> Dict[str, list]:
    """COCO uncompressed RLE of a (H, W) bool mask: run lengths in column-major order."""
    flat = mask.flatten(order='F').astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:  # runs start with zeros
        counts = [0] + counts
    return dict(counts=counts, size=list(mask.shape))


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _bbox(mask: np.ndarray) -> List[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


def _is_current(root: str, stamp: dict) -> bool:
    path = osp.join(root, _STAMP)
    if not osp.isfile(path):
        return False
    with open(path) as f:
        return json.load(f) == stamp


def _write_stamp(root: str, stamp: dict) -> None:
    with open(osp.join(root, _STAMP), 'w') as f:
        json.dump(stamp, f, indent=1)


def _check_sizes(image_size: Sequence[int], num_train: int, num_val: int,
                 max_objects: int) -> Tuple[int, int]:
    """Validate a generator's sizes and counts; returns ``(height, width)``.

    Raises:
        BadInputError: On image sides below 32 or non-positive counts.
    """
    height, width = (int(s) for s in image_size)
    if min(height, width) < 32 or num_train < 1 or num_val < 1 or max_objects < 1:
        raise BadInputError(f'need image sides >= 32 and positive counts, got image_size='
                            f'{image_size}, num_train={num_train}, num_val={num_val}, '
                            f'max_objects={max_objects}')
    return height, width


def make_coco_instances(root: str, num_train: int = 200, num_val: int = 50,
                        image_size: Tuple[int, int] = (96, 96), max_objects: int = 3,
                        crowd_prob: float = 0.15, seed: int = 0) -> Dict[str, str]:
    """Write (or keep, if already there) a synthetic instance-segmentation set in COCO layout.

    Args:
        root: Dataset root, e.g. ``data/synthetic/coco``; use it as the config's ``data_root``.
        num_train: Training images. num_val: Validation images.
        image_size: (height, width) of every image.
        max_objects: Most regular shapes per image (at least one).
        crowd_prob: Chance that an image also holds a crowd region (``iscrowd=1``).
        seed: Seed; the same arguments always give the same files.

    Returns:
        Paths: ``train_ann``, ``val_ann`` (JSON files), ``train_img``, ``val_img`` (folders).

    Raises:
        BadInputError: On sizes or counts out of range.
    """
    height, width = _check_sizes(image_size, num_train, num_val, max_objects)
    stamp = dict(kind='coco', num_train=num_train, num_val=num_val, image_size=[height, width],
                 max_objects=max_objects, crowd_prob=crowd_prob, seed=seed)
    paths = {f'{s}_ann': osp.join(root, 'annotations', f'instances_{d}.json')
             for s, d in _COCO_SPLITS.items()}
    paths.update({f'{s}_img': osp.join(root, d) for s, d in _COCO_SPLITS.items()})
    if _is_current(root, stamp):
        return paths
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(INSTANCE_CLASSES)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split_index, (split, count) in enumerate((('train', num_train), ('val', num_val))):
        rng = np.random.default_rng([seed, split_index])
        os.makedirs(paths[f'{split}_img'], exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            image, objects, _ = _render(rng, height, width, max_objects, crowd_prob, False)
            file_name = f'{image_id:06d}.jpg'
            cv2.imwrite(osp.join(paths[f'{split}_img'], file_name), image,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
            for obj in objects:
                mask, area = obj['mask'], int(obj['mask'].sum())
                if area < 16:
                    continue
                segmentation = _rle(mask) if obj['crowd'] else _polygons(mask)
                if not segmentation:
                    continue
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id, category_id=obj['kind'] + 1,
                    segmentation=segmentation, area=float(area), bbox=_bbox(mask),
                    iscrowd=int(obj['crowd'])))
        with open(paths[f'{split}_ann'], 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    _write_stamp(root, stamp)
    return paths


def make_ade_semantic(root: str, num_train: int = 200, num_val: int = 50,
                      image_size: Tuple[int, int] = (96, 96), max_objects: int = 3,
                      seed: int = 0) -> Dict[str, str]:
    """Write (or keep) a synthetic semantic-segmentation set in ADE20K layout.

    Label maps are PNG, uint8: 0 = "other" (clutter strokes; ignored with
    ``reduce_zero_label=True``), ``k + 1`` = class ``k`` of :data:`SEMANTIC_CLASSES`
    (background, circle, rectangle, triangle).

    Args:
        root: Dataset root, e.g. ``data/synthetic/ade``; use it as the config's ``data_root``.
        num_train: Training images. num_val: Validation images.
        image_size: (height, width) of every image.
        max_objects: Most shapes per image (at least one).
        seed: Seed; the same arguments always give the same files.

    Returns:
        Folders: ``train_img``, ``train_ann``, ``val_img``, ``val_ann``.

    Raises:
        BadInputError: On sizes or counts out of range.
    """
    height, width = _check_sizes(image_size, num_train, num_val, max_objects)
    stamp = dict(kind='ade', num_train=num_train, num_val=num_val, image_size=[height, width],
                 max_objects=max_objects, seed=seed)
    paths = {}
    for split, folder in _ADE_SPLITS.items():
        paths[f'{split}_img'] = osp.join(root, 'images', folder)
        paths[f'{split}_ann'] = osp.join(root, 'annotations', folder)
    if _is_current(root, stamp):
        return paths
    for split_index, (split, count) in enumerate((('train', num_train), ('val', num_val))):
        rng = np.random.default_rng([seed, 100 + split_index])
        os.makedirs(paths[f'{split}_img'], exist_ok=True)
        os.makedirs(paths[f'{split}_ann'], exist_ok=True)
        for index in range(count):
            image, objects, clutter = _render(rng, height, width, max_objects, 0.0, True)
            label = np.ones((height, width), np.uint8)  # background: class 0 -> value 1
            for obj in objects:
                label[obj['mask']] = obj['kind'] + 2
            label[clutter] = 0
            name = f'synthetic_{split}_{index:06d}'
            cv2.imwrite(osp.join(paths[f'{split}_img'], name + '.jpg'), image,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(paths[f'{split}_ann'], name + '.png'), label)
    _write_stamp(root, stamp)
    return paths


def coco_metainfo() -> Dict[str, Sequence]:
    """``metainfo`` for mmdet's ``CocoDataset`` on :func:`make_coco_instances` data."""
    return dict(classes=INSTANCE_CLASSES, palette=INSTANCE_PALETTE)


def ade_metainfo() -> Dict[str, Sequence]:
    """``metainfo`` for mmseg's ``BaseSegDataset`` on :func:`make_ade_semantic` data."""
    return dict(classes=SEMANTIC_CLASSES, palette=SEMANTIC_PALETTE)
