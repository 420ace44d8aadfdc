"""Rain100L metrics as the HINT authors computed them (their ``Deraining/evaluate_PSNR_SSIM.m``, from Restormer).

The MATLAB script reads the saved 8-bit PNGs, converts RGB images with ``rgb2ycbcr`` (which, on uint8 images,
returns uint8: the Y channel is rounded to 8 bits) and measures the Y channel only:

* PSNR ``20 log10(255 / RMSE)`` (``inf`` for identical images);
* SSIM of Zhou Wang's ``ssim_index`` (Gaussian 11 x 11, sigma 1.5, K = 0.01 / 0.03, L = 255, 'valid' filtering),
  which is BasicSR's ``_ssim`` (reused through ``calculate_ssim`` with ``crop_border: 0``).

BasicSR's ``test_y_channel: true`` differs in one point: its Y is not rounded. Here
``Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)``, rounded half up and computed exactly in integers;
MATLAB computes it in doubles, where a few exact ties (194 of the 2^24 colours) may land on the other side and
give a Y one lower. Float inputs (``val.use_image: false``) are first clipped to [0, 255] and rounded half to even,
as the authors' test script did when it saved the PNGs (``img_as_ubyte``). One-channel images are used as they
are. Images smaller than 11 x 11 are refused (the MATLAB SSIM returns -Inf for them).
"""
import math

import numpy as np
from basicsr.metrics.psnr_ssim import calculate_ssim
from basicsr.utils.registry import METRIC_REGISTRY

from hint_plugin.metrics.lowlight_metric import crop

Y_COEFFICIENTS_RGB_X1000 = (65481, 128553, 24966)  # MATLAB's rgb2ycbcr Y row, x 1000 for integer arithmetic


def to_uint8(image):
    """uint8 arrays as they are; float arrays on the 0-255 scale clipped and rounded half to even."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.rint(np.clip(image.astype(np.float64), 0, 255)).astype(np.uint8)


def matlab_y(image, channel_order='bgr'):
    """The Y channel of MATLAB's ``rgb2ycbcr`` on an 8-bit image: ``(H, W, 3)`` uint8 in ``channel_order``
    ('bgr' or 'rgb') -> ``(H, W)`` uint8 in [16, 235]; ``(H, W)`` or ``(H, W, 1)`` -> ``(H, W)`` unchanged."""
    image = to_uint8(image)
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[..., 0]
    if image.shape[2] != 3:
        raise ValueError(f'Y channel: expected 1 or 3 channels, got an image of shape {image.shape}')
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' (BasicSR's tensor2img) or 'rgb', got {channel_order!r}")
    rgb = image.astype(np.int64)
    if channel_order == 'bgr':
        rgb = rgb[..., ::-1]
    weighted = sum(coefficient * rgb[..., channel] for channel, coefficient in enumerate(Y_COEFFICIENTS_RGB_X1000))
    # 16 + weighted / 255000, rounded half up: floor((weighted + 16 * 255000 + 127500) / 255000)
    return ((weighted + 16 * 255000 + 127500) // 255000).astype(np.uint8)


def y_channels(img, img2, channel_order, extra, metric, crop_border=0):
    """Both images' 8-bit Y channels less ``crop_border`` on each side, after checking the options and shapes."""
    unknown = sorted(set(extra or ()) - {'better'})
    if unknown:
        raise ValueError(f'{metric}: unknown option(s) {", ".join(unknown)}; it reads channel_order (bgr, rgb)')
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'{metric}: image shapes differ: {np.shape(img)} (restored) and {np.shape(img2)} '
                         '(ground truth)')
    return (crop(matlab_y(img, channel_order), crop_border, metric),
            crop(matlab_y(img2, channel_order), crop_border, metric))


@METRIC_REGISTRY.register()
def calculate_psnr_y_matlab(img, img2, crop_border=0, channel_order='bgr', **kwargs):
    """PSNR on MATLAB's 8-bit Y channel (module docstring).

    Args:
        img, img2 (ndarray): restored and ground-truth images ``(H, W, C)``, uint8 or float on the 0-255 scale.
        crop_border (int): pixels left out on each side (0, the authors' protocol).
        channel_order (str): 'bgr' (BasicSR's ``tensor2img``, default) or 'rgb'.
    """
    y1, y2 = y_channels(img, img2, channel_order, kwargs, 'calculate_psnr_y_matlab', crop_border)
    rmse = math.sqrt(float(np.mean((y1.astype(np.float64) - y2.astype(np.float64)) ** 2)))
    return math.inf if rmse == 0 else 20 * math.log10(255.0 / rmse)


@METRIC_REGISTRY.register()
def calculate_ssim_y_matlab(img, img2, crop_border=0, channel_order='bgr', **kwargs):
    """SSIM on MATLAB's 8-bit Y channel (module docstring); arguments as :func:`calculate_psnr_y_matlab`."""
    y1, y2 = y_channels(img, img2, channel_order, kwargs, 'calculate_ssim_y_matlab', crop_border)
    if min(y1.shape) < 11:
        raise ValueError(f'calculate_ssim_y_matlab: images of {y1.shape[0]}x{y1.shape[1]} are smaller than the '
                         '11 x 11 SSIM window')
    return float(calculate_ssim(y1.astype(np.float64), y2.astype(np.float64), crop_border=0))
