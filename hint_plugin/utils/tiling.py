"""Overlapping tiles for restoring images of any size; shared by HINTModel and the inference library."""
import math

import torch

from hint_plugin.archs.padding import PAD_MULTIPLE, pad_to_multiple
from hint_plugin.errors import check_int

TILE_MERGES = ('cosine', 'average')  # blended raised-cosine ramps, the authors' plain mean (see restore)


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


def restore(forward, image, window_size=PAD_MULTIPLE, tile=None, overlap=32, merge='cosine'):
    """Restore an image of any size with ``forward``, optionally in overlapping tiles merged by ``merge``.

    Without ``tile`` ``forward`` runs once on ``image`` padded (``pad_to_multiple``) to a multiple of
    ``window_size``. With ``tile`` the tiles go through ``forward`` one at a time (HINT couples the images of a
    batch through batch statistics), each padded to a multiple of ``window_size`` and cropped back, and only the
    weighted sum of their outputs and the summed weights are kept (:func:`_merge_tiles`). ``merge`` picks the
    grid and the weights (``val.tile.merge``, ``--tile-merge``):

    * ``'cosine'`` (default): the padded image is cut into tiles of ``tile`` (rounded down to a multiple of
      ``window_size``) overlapping by at least ``overlap`` (rounded up to a multiple of ``window_size``, at most
      ``tile - window_size``); tiles start on multiples of ``window_size``, the last one of each row and column
      ends at the border, and outputs are blended with separable raised-cosine ramps (``_blend_window``), so no
      seams show. When one tile covers the padded image, ``forward`` runs once on it.
    * ``'average'``: the authors' tiled testing: ``tile x tile`` tiles of the unpadded image at stride
      ``tile - overlap`` on their grid (:func:`authors_tile_starts`), every pixel of a tile weighing 1 (their
      ``mergeimage``); ``overlap`` must be smaller than ``tile``.

    Args:
        forward (callable): ``(B, C, h, w) -> (B, C_out, h, w)``, e.g. the network; it always receives h, w that
            are multiples of ``window_size``.
        image (Tensor): ``(B, C, H, W)``.
        window_size (int): padding multiple of ``forward``. Default: ``PAD_MULTIPLE`` (8, HINT's).
        tile (int | None): tile size; None for a single pass. Default: None.
        overlap (int): overlap of neighbouring tiles (see ``merge``). Default: 32.
        merge (str): one of :data:`TILE_MERGES`. Default: ``'cosine'``.

    Returns:
        Tensor: ``(B, C_out, H, W)``.
    """
    check_int('window_size', window_size, 1)
    check_int('overlap', overlap, 0)
    if merge not in TILE_MERGES:
        raise ValueError(f'merge must be one of {TILE_MERGES}, got {merge!r}')
    height, width = image.shape[-2:]
    if tile is None:
        return forward(pad_to_multiple(image, window_size))[..., :height, :width]
    check_int('tile', tile, 1)
    if merge == 'average':
        if overlap >= tile:
            raise ValueError(f'tile overlap ({overlap}) must be smaller than the tile ({tile})')
        tile_h, tile_w = min(tile, height), min(tile, width)
        tops = authors_tile_starts(height, tile_h, tile - overlap)
        lefts = authors_tile_starts(width, tile_w, tile - overlap)
        return _merge_tiles(forward, image, window_size, (tile_h, tile_w), tops, lefts, lambda top, left, like: 1)

    padded = pad_to_multiple(image, window_size)
    padded_h, padded_w = padded.shape[-2:]
    tile = max(window_size, tile // window_size * window_size)
    if tile >= padded_h and tile >= padded_w:
        return forward(padded)[..., :height, :width]
    overlap = min(-(-overlap // window_size) * window_size, tile - window_size)
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)

    def ramps(top, left, like):
        return torch.outer(_blend_window(top, tile_h, padded_h, overlap, like),
                           _blend_window(left, tile_w, padded_w, overlap, like))

    tops, lefts = _tile_starts(padded_h, tile_h, tile - overlap), _tile_starts(padded_w, tile_w, tile - overlap)
    return _merge_tiles(forward, padded, window_size, (tile_h, tile_w), tops, lefts, ramps)[..., :height, :width]


def _merge_tiles(forward, image, window_size, size, tops, lefts, weight):
    """The weighted mean of ``forward`` over the tiles of ``size`` (h, w) at ``tops`` x ``lefts`` of ``image``.

    Each tile is padded to a multiple of ``window_size`` for ``forward`` (a no-op on a grid of such tiles) and
    its output cropped back; ``weight(top, left, like)`` is its pixels' weight (a number or an ``(h, w)``
    tensor of ``like``'s dtype and device). Returns ``(B, C_out, H, W)`` for ``image`` ``(B, C, H, W)``.
    """
    tile_h, tile_w = size
    output = weight_sum = None
    for top in tops:
        for left in lefts:
            patch = pad_to_multiple(image[..., top:top + tile_h, left:left + tile_w].contiguous(), window_size)
            restored = forward(patch)
            if restored.shape[-2:] != patch.shape[-2:]:
                raise ValueError(f'forward must keep the spatial size: a {patch.shape[-2]}x{patch.shape[-1]} tile gave '
                                 f'{tuple(restored.shape)}')
            restored = restored[..., :tile_h, :tile_w]
            if output is None:
                output = restored.new_zeros(*restored.shape[:2], *image.shape[-2:])
                weight_sum = restored.new_zeros(image.shape[-2:])
            tile_weight = weight(top, left, restored)
            output[..., top:top + tile_h, left:left + tile_w] += restored * tile_weight
            weight_sum[top:top + tile_h, left:left + tile_w] += tile_weight
    return output / weight_sum


def authors_tile_starts(length, size, stride):
    """Tile starts of the HINT authors' test scripts (``splitimage``): every ``stride`` from 0, less those whose
    tile would reach the border, then ``length - size``; a tile larger than ``length`` becomes one at 0."""
    if size >= length:
        return [0]
    starts = list(range(0, length, stride))
    while starts and starts[-1] + size >= length:
        starts.pop()
    return starts + [length - size]
