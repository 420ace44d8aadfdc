"""Padding and overlapping tiles for restoring images of any size; shared by HINT, HINTModel and tools."""
from torch.nn import functional as F


def pad_to_multiple(x, multiple):
    """Pad the bottom and right of ``(B, C, H, W)`` so H and W are multiples of ``multiple``.

    Reflect padding where the image is large enough for it (pad < size), replicate otherwise.
    Returns the padded tensor; crop back with ``out[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
