"""Padding an image to the size HINT works on: torch only, so the network, the tiling and the export share it.

HINT downsamples three times by 2, so it runs on heights and widths that are multiples of ``PAD_MULTIPLE``;
images of other sizes are padded at the bottom and right and the output is cropped back.
"""
from torch.nn import functional as F

PAD_MULTIPLE = 8  # three 2x downsamplings


def pad_to_multiple(x, multiple=PAD_MULTIPLE):
    """Pad the bottom and right of ``(B, C, H, W)`` so H and W are multiples of ``multiple``.

    Reflect padding where the image is large enough for it (pad < size), replicate otherwise.
    Returns the padded tensor ``(B, C, ceil(H / multiple) * multiple, ...)``; crop back with ``out[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
