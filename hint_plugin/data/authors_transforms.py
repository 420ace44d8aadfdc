"""The image transforms of the HINT authors' data pipeline, for the datasets in their dialect.

* :func:`geometric_augment` / :func:`random_geometric_augment`: ``geometric_augs: true``, one of the eight
  flips / quarter turns of the square, the same for every image of a pair;
* :func:`reflect_pad_to`: a training image smaller than the patch is mirrored at its bottom and right
  (Rain100L's 321-pixel side at patch 384);
* :func:`center_crop`: the validation crop of ``gt_size`` (dehazing, denoising), refusing smaller images
  (the window itself is :func:`hint_plugin.utils.image_io.crop_center`).

All take and return ``(H, W, C)`` NumPy arrays.
"""
import random

import cv2
import numpy as np

from hint_plugin.utils.image_io import crop_center

GEOMETRIC_MODES = 8


def geometric_augment(image, mode):
    """One of the eight symmetries of the square on ``(H, W, C)``: ``mode // 2`` counter-clockwise quarter
    turns (``np.rot90``), then an up-down flip when ``mode`` is odd; mode 0 is the identity.

    The modes are numbered as in the authors' ``data_augmentation``: 1 flip, 2 turn, 3 turn + flip, 4 half
    turn, 5 half turn + flip, 6 three quarters, 7 three quarters + flip. Returns a contiguous copy.
    """
    if not 0 <= mode < GEOMETRIC_MODES:
        raise ValueError(f'geometric augmentation mode must be in 0..7, got {mode!r}')
    out = np.rot90(image, k=mode // 2)
    if mode % 2:
        out = np.flipud(out)
    return np.ascontiguousarray(out)


def random_geometric_augment(*images, rng=random):
    """The same random one of the eight modes on every image (``rng.randint(0, 7)``, as the authors draw it)."""
    mode = rng.randint(0, GEOMETRIC_MODES - 1)
    return [geometric_augment(image, mode) for image in images]


def reflect_pad_to(size, *images):
    """Pad the bottom and right of each ``(H, W, C)`` image up to ``size x size`` with OpenCV's
    ``BORDER_REFLECT`` (edge pixel repeated: ``abc|cba``); images already that large are returned unchanged.
    The pad is computed from the first image and applied to all (a pair has one size)."""
    height, width = images[0].shape[:2]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h == 0 and pad_w == 0:
        return list(images)
    padded = []
    for image in images:
        out = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT)
        padded.append(out[..., None] if out.ndim == 2 else out)  # OpenCV drops a single channel axis
    return padded


def center_crop(size, *images, name='image'):
    """The central ``size x size`` window of each ``(H, W, C)`` image (top-left at ``((H - size) // 2,
    (W - size) // 2)``); ``name`` names the image when it is smaller than ``size``."""
    height, width = images[0].shape[:2]
    if height < size or width < size:
        raise ValueError(f'{name} is {height}x{width}, smaller than the validation crop gt_size {size}')
    return [crop_center(image, size) for image in images]
