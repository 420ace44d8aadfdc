"""Decoding training images at their stored bit depth.

BasicSR's ``imfrombytes(content, float32=True)`` decodes with ``cv2.IMREAD_COLOR``, which reduces a 16-bit PNG
or TIFF to 8 bits without a word; :func:`decode_training_image` keeps the 16 bits.
"""
import cv2
import numpy as np

FULL_SCALE = {np.dtype(np.uint8): 255., np.dtype(np.uint16): 65535.}


def decode_training_image(content):
    """Encoded image bytes -> float32 BGR ``(H, W, 3)`` in [0, 1], at the file's own bit depth.

    Like BasicSR's ``imfrombytes(content, float32=True)`` (grey replicated to three channels, alpha dropped;
    8-bit images give the same values), but a 16-bit image is divided by 65535 instead of being cut to 8 bits.
    Bytes that are no image raise ``cv2.error`` or ``AttributeError``, as ``imfrombytes`` does.
    """
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    return image.astype(np.float32) / FULL_SCALE.get(image.dtype, 1.)
