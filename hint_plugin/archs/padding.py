"""HINT downsamples three times by 2: images are padded to multiples of ``PAD_MULTIPLE`` (the network, the
tiling and the export alike)."""
from torch.nn import functional as F

PAD_MULTIPLE = 8


def pad_to_multiple(x, multiple=PAD_MULTIPLE):
    """``(B, C, H, W)`` padded at the bottom and right to multiples of ``multiple`` (reflected where the pad is
    smaller than the size, else replicated); crop back with ``out[..., :H, :W]``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
