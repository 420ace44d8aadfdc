"""Overlapping tiles for restoring images of any size; shared by HINTModel and the inference library."""
import math

import torch

from hint_plugin.archs.padding import PAD_MULTIPLE, pad_to_multiple
from hint_plugin.utils.validation import check_int

TILE_MERGES = ('cosine', 'average')  # blended raised-cosine ramps (restore), the authors' plain mean (restore_average)


def _tile_starts(length, size, stride):
    """Starts of tiles of ``size`` every ``stride`` along ``length``; the last one ends at the border."""
    return list(range(0, length - size, stride)) + [length - size]


def _blend_window(start, size, length, overlap, like):
    """1-D blend weights ``(size,)`` of the tile ``[start, start + size)`` on an axis of ``length``.

    A raised-cosine ramp over ``overlap`` pixels on each side that meets another tile, 1 elsewhere; the ramps of
    two tiles overlapping by exactly ``overlap`` sum to 1, and every weight is > 0. ``like`` gives dtype and device.
    """
    weight = like.new_ones(size)
    if overlap > 0:
        ramp = torch.sin(0.5 * math.pi * (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap)**2
        ramp = ramp.to(like)
        if start > 0:
            weight[:overlap] = ramp
        if start + size < length:
            weight[-overlap:] = torch.minimum(weight[-overlap:], ramp.flip(0))
    return weight


def restore(forward, image, window_size=PAD_MULTIPLE, tile=None, overlap=32):
    """Restore an image of any size with ``forward``, optionally in overlapping tiles.

    ``image`` is padded (``pad_to_multiple``) to a multiple of ``window_size``. Without ``tile``, or when one tile
    covers the padded image, ``forward`` runs once on it. Otherwise the padded image is cut into tiles of
    ``tile`` (rounded down to a multiple of ``window_size``) overlapping by at least ``overlap`` (rounded up to a
    multiple of ``window_size``, at most ``tile - window_size``); tiles start on multiples of ``window_size`` and
    the last one of each row and column ends at the border. The tiles go through ``forward`` one at a time (HINT
    couples the images of a batch through batch statistics), and their outputs are blended with separable
    raised-cosine ramps (``_blend_window``), normalised by the summed weights, so no seams show. Only the output
    and weight sums are kept, not the tiles.

    Args:
        forward (callable): ``(B, C, h, w) -> (B, C_out, h, w)``, e.g. the network; it always receives h, w that
            are multiples of ``window_size``.
        image (Tensor): ``(B, C, H, W)``.
        window_size (int): padding multiple of ``forward``. Default: ``PAD_MULTIPLE`` (8, HINT's).
        tile (int | None): tile size; None for a single pass. Default: None.
        overlap (int): minimum overlap of neighbouring tiles. Default: 32.

    Returns:
        Tensor: ``(B, C_out, H, W)``.
    """
    check_int('window_size', window_size, 1)
    check_int('overlap', overlap, 0)
    if tile is not None:
        check_int('tile', tile, 1)
    height, width = image.shape[-2:]
    padded = pad_to_multiple(image, window_size)
    padded_h, padded_w = padded.shape[-2:]
    if tile is not None:
        tile = max(window_size, tile // window_size * window_size)
    if tile is None or (tile >= padded_h and tile >= padded_w):
        return forward(padded)[..., :height, :width]

    overlap = min(-(-overlap // window_size) * window_size, tile - window_size)
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    output = weight_sum = None
    for top in _tile_starts(padded_h, tile_h, tile - overlap):
        for left in _tile_starts(padded_w, tile_w, tile - overlap):
            restored = forward(padded[..., top:top + tile_h, left:left + tile_w].contiguous())
            if restored.shape[-2:] != (tile_h, tile_w):
                raise ValueError(f'forward must keep the spatial size: a {tile_h}x{tile_w} tile gave '
                                 f'{tuple(restored.shape)}')
            if output is None:
                output = restored.new_zeros(*restored.shape[:2], padded_h, padded_w)
                weight_sum = restored.new_zeros(padded_h, padded_w)
            weight = torch.outer(_blend_window(top, tile_h, padded_h, overlap, restored),
                                 _blend_window(left, tile_w, padded_w, overlap, restored))
            output[..., top:top + tile_h, left:left + tile_w] += restored * weight
            weight_sum[top:top + tile_h, left:left + tile_w] += weight
    return output[..., :height, :width] / weight_sum[:height, :width]


def authors_tile_starts(length, size, stride):
    """Tile starts of the HINT authors' test scripts (``splitimage``): every ``stride`` from 0, less those whose
    tile would reach the border, then ``length - size``; a tile larger than ``length`` becomes one at 0."""
    if size >= length:
        return [0]
    starts = list(range(0, length, stride))
    while starts and starts[-1] + size >= length:
        starts.pop()
    return starts + [length - size]


def restore_average(forward, image, tile, overlap, window_size=8):
    """Restore ``(B, C, H, W)`` in ``tile x tile`` tiles at stride ``tile - overlap`` on the authors' grid
    (:func:`authors_tile_starts`), merged by plain averaging (every tile's pixels weigh 1), as the authors'
    ``mergeimage`` does. Each tile is padded to a multiple of ``window_size`` for ``forward`` and cropped back
    (a no-op for tile sizes such as 256 or 384). ``merge: average`` in ``val.tile``. Returns
    ``(B, C_out, H, W)``."""
    check_int('tile', tile, 1)
    check_int('overlap', overlap, 0)
    if overlap >= tile:
        raise ValueError(f'tile overlap ({overlap}) must be smaller than the tile ({tile})')
    height, width = image.shape[-2:]
    tile_h, tile_w = min(tile, height), min(tile, width)
    output = count = None
    for top in authors_tile_starts(height, tile_h, tile - overlap):
        for left in authors_tile_starts(width, tile_w, tile - overlap):
            patch = image[..., top:top + tile_h, left:left + tile_w]
            restored = forward(pad_to_multiple(patch, window_size))[..., :tile_h, :tile_w]
            if output is None:
                output = restored.new_zeros(*restored.shape[:2], height, width)
                count = restored.new_zeros(height, width)
            output[..., top:top + tile_h, left:left + tile_w] += restored
            count[top:top + tile_h, left:left + tile_w] += 1
    return output / count
