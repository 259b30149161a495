"""Small synthetic datasets in COCO and ADE20K layouts, for the quick start and the tests.

Images show filled circles, rectangles (rotated) and triangles of random colours, sizes and
positions on a smooth noisy background; later shapes occlude earlier ones. The class of a shape
is its geometry, never its colour.

``make_coco_instances`` writes the mmdet COCO layout (``annotations/instances_{split}2017.json``,
``{split}2017/*.jpg``): one annotation per visible shape with polygons traced from the visible
mask (an occluded shape can have several), its box and area, plus ``iscrowd=1`` groups of small
shapes annotated as one RLE region, as COCO does for crowds.

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
    """A smooth colour gradient with mild noise, (H, W, 3) uint8."""
    c0, c1 = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    ramp = np.linspace(0, 1, width)[None, :, None] if rng.random() < 0.5 else \
        np.linspace(0, 1, height)[:, None, None]
    img = c0 + (c1 - c0) * ramp + rng.normal(0, 6, (height, width, 3))
    return np.clip(np.broadcast_to(img, (height, width, 3)), 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A random colour that differs clearly from the mean colour under ``mask``."""
    under = image[mask].mean(axis=0) if mask.any() else np.full(3, 128.0)
    while True:
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - under).sum() > 150:
            return colour


def _render(rng: np.random.Generator, height: int, width: int, max_objects: int,
            crowd_prob: float, clutter: bool) -> Tuple[np.ndarray, List[dict], np.ndarray]:
    """Draw one image.

    Returns:
        The image (H, W, 3) BGR uint8; the objects, each ``dict(kind, mask (H, W) bool of its
        visible pixels, crowd)``; a clutter mask (H, W) bool (thin strokes over everything).
    """
    image = _background(rng, height, width)
    owner = np.full((height, width), -1, np.int32)
    objects: List[dict] = []
    side = min(height, width)

    def paint(mask: np.ndarray, kind: int, crowd: bool) -> None:
        colour = _colour(rng, image, mask)
        image[mask] = np.clip(colour + rng.normal(0, 4, (int(mask.sum()), 3)), 0, 255)
        owner[mask] = len(objects)
        objects.append(dict(kind=kind, full_area=int(mask.sum()), crowd=crowd))

    if rng.random() < crowd_prob:  # a crowd: 5-8 small shapes of one class, one region
        kind = int(rng.integers(len(INSTANCE_CLASSES)))
        cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
        union = np.zeros((height, width), bool)
        for _ in range(int(rng.integers(5, 9))):
            size = rng.uniform(0.05, 0.08) * side
            union |= _fill((height, width), _shape_polygon(
                rng, kind, cx + rng.normal(0, 0.08 * side), cy + rng.normal(0, 0.08 * side),
                size))
        paint(union, kind, crowd=True)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(len(INSTANCE_CLASSES)))
        size = rng.uniform(0.15, 0.5) * side
        cx = rng.uniform(size / 2, width - size / 2)
        cy = rng.uniform(size / 2, height - size / 2)
        paint(_fill((height, width), _shape_polygon(rng, kind, cx, cy, size)), kind, False)
    for index, obj in enumerate(objects):
        obj['mask'] = owner == index

    clutter_mask = np.zeros((height, width), np.uint8)
    if clutter:
        for _ in range(int(rng.integers(0, 3))):
            p0 = (int(rng.integers(width)), int(rng.integers(height)))
            p1 = (int(rng.integers(width)), int(rng.integers(height)))
            cv2.line(clutter_mask, p0, p1, 1, thickness=max(1, side // 64))
        image[clutter_mask.astype(bool)] = rng.uniform(0, 255, 3)
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
        ValueError: On image sides below 32 or non-positive counts.
    """
    height, width = (int(s) for s in image_size)
    if min(height, width) < 32 or num_train < 1 or num_val < 1 or max_objects < 1:
        raise ValueError(f'need image sides >= 32 and positive counts, got image_size='
                         f'{image_size}, num_train={num_train}, num_val={num_val}, '
                         f'max_objects={max_objects}')
    return height, width


def make_coco_instances(root: str, num_train: int = 200, num_val: int = 50,
                        image_size: Tuple[int, int] = (160, 160), max_objects: int = 4,
                        crowd_prob: float = 0.15, min_visible: float = 0.35,
                        seed: int = 0) -> Dict[str, str]:
    """Write (or keep, if already there) a synthetic instance-segmentation set in COCO layout.

    Args:
        root: Dataset root, e.g. ``data/synthetic/coco``; use it as the config's ``data_root``.
        num_train: Training images. num_val: Validation images.
        image_size: (height, width) of every image.
        max_objects: Most regular shapes per image (at least one).
        crowd_prob: Chance that an image also holds a crowd region (``iscrowd=1``).
        min_visible: A shape less visible than this fraction of its area is left out (and
            stays as unannotated background, like an unlabelled object in COCO).
        seed: Seed; the same arguments always give the same files.

    Returns:
        Paths: ``train_ann``, ``val_ann`` (JSON files), ``train_img``, ``val_img`` (folders).

    Raises:
        ValueError: On sizes or counts out of range.
    """
    height, width = _check_sizes(image_size, num_train, num_val, max_objects)
    stamp = dict(kind='coco', num_train=num_train, num_val=num_val, image_size=[height, width],
                 max_objects=max_objects, crowd_prob=crowd_prob, min_visible=min_visible,
                 seed=seed)
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
                if area < 16 or area < min_visible * obj['full_area']:
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
                      image_size: Tuple[int, int] = (160, 160), max_objects: int = 4,
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
        ValueError: On sizes or counts out of range.
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
