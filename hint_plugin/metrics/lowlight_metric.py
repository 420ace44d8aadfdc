"""LOL-v2 metrics as the HINT authors computed them (their ``Enhancement/test_from_dataset_LOLv2_*.py``).

Their protocol, point by point, and what these functions do:

* the output is clamped to [0, 1] and kept in float: PSNR is ``10 log10(1 / MSE)`` over all pixels and channels
  of that float image against the ground truth (8-bit values / 255), not on an image rounded to 8 bits; 100 when
  the MSE is 0. Give these metrics the unrounded output: ``model_type: ImageCleanModel`` with
  ``val.use_image: false`` passes the float output (on the 0-255 scale); with 8-bit images the PSNR is that of
  the rounded output;
* SSIM is computed on both images rounded to 8 bits (``skimage.img_as_ubyte``: round half to even) with the
  Gaussian 11 x 11, sigma 1.5 SSIM averaged over the channels, which is BasicSR's ``calculate_ssim`` with
  ``crop_border: 0`` (reused here);
* GT-mean (their ``--GT_mean``, after KinD): the clamped output is scaled by ``mean(grey(gt)) / mean(grey(out))``
  and clamped again, before both metrics. ``gt_mean`` chooses it:

  - ``~`` / ``false`` (default): off, the paper's numbers;
  - ``authors``: their grey conversion, ``cv2.COLOR_BGR2GRAY`` applied to RGB arrays, i.e. ``0.114 R + 0.587 G
    + 0.299 B`` (red and blue weights swapped);
  - ``corrected``: ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``.

  ``channel_order`` says how the arrays given to the metric are ordered: ``bgr`` (BasicSR's ``tensor2img`` and
  ``val.rgb2bgr: true``, the default) or ``rgb`` (``val.rgb2bgr: false``). One-channel images are their own grey.

The authors computed in float32 (output and ground truth); these functions compute in float64, which moves the
PSNR by about 1e-6 dB.
"""
import math

import numpy as np
from basicsr.metrics.psnr_ssim import calculate_ssim
from basicsr.utils.registry import METRIC_REGISTRY

BT601_RGB = (0.299, 0.587, 0.114)  # grey = 0.299 R + 0.587 G + 0.114 B
GT_MEAN_MODES = (None, False, 'authors', 'corrected')


def grey_weights(gt_mean, channel_order):
    """Weights of the grey conversion per array channel (length 3) for ``gt_mean`` 'authors' or 'corrected' and
    arrays in ``channel_order`` ('bgr' or 'rgb')."""
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' (BasicSR's tensor2img, val.rgb2bgr: true) or 'rgb', "
                         f'got {channel_order!r}')
    rgb = BT601_RGB if gt_mean == 'corrected' else BT601_RGB[::-1]  # authors: BGR2GRAY read on RGB arrays
    return rgb if channel_order == 'rgb' else rgb[::-1]


def grey_mean(image, weights):
    """Mean of the grey version of ``image`` ``(H, W, C)`` (C 1 or 3) or ``(H, W)``."""
    if image.ndim == 2 or image.shape[2] == 1:
        return float(image.mean())
    if image.shape[2] != 3:
        raise ValueError(f'GT-mean needs 1 or 3 channels, got an image of shape {image.shape}')
    return float(sum(weight * image[..., channel].mean() for channel, weight in enumerate(weights)))


def rescale_to_gt_mean(restored, target, gt_mean, channel_order='bgr'):
    """``restored * mean(grey(target)) / mean(grey(restored))`` clipped to [0, 1] (both in [0, 1], HWC)."""
    weights = grey_weights(gt_mean, channel_order)
    mean_restored = grey_mean(restored, weights)
    if mean_restored == 0:
        raise ValueError('GT-mean: the restored image is black (grey mean 0), it cannot be rescaled')
    return np.clip(restored * (grey_mean(target, weights) / mean_restored), 0, 1)


def crop(image, crop_border, metric):
    """``image`` less ``crop_border`` pixels on each side (BasicSR's metric option; the authors used 0)."""
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f'{metric}: crop_border must be an integer >= 0, got {crop_border!r}')
    return image[crop_border:-crop_border, crop_border:-crop_border, ...] if crop_border else image


def lol_images(img, img2, gt_mean=None, channel_order='bgr', extra=None, metric='calculate_psnr_lol', crop_border=0):
    """The restored image ``img`` and ground truth ``img2`` (HWC on the 0-255 scale, float or uint8) less
    ``crop_border`` as float64 in [0, 1]: ``img`` clipped, then optionally rescaled to the GT mean (module
    docstring)."""
    unknown = sorted(set(extra or ()) - {'better'})
    if unknown:
        raise ValueError(f'{metric}: unknown option(s) {", ".join(unknown)}; it reads gt_mean '
                         f'(~, authors, corrected) and channel_order (bgr, rgb)')
    if gt_mean not in GT_MEAN_MODES:
        raise ValueError(f"{metric}: gt_mean must be ~ (off), 'authors' (their BGR2GRAY on RGB arrays) or "
                         f"'corrected' (BT.601 luma), got {gt_mean!r}")
    if img.shape != img2.shape:
        raise ValueError(f'{metric}: image shapes differ: {img.shape} (restored) and {img2.shape} (ground truth)')
    restored = np.clip(crop(np.asarray(img, dtype=np.float64), crop_border, metric) / 255.0, 0, 1)
    target = crop(np.asarray(img2, dtype=np.float64), crop_border, metric) / 255.0
    if gt_mean:
        restored = rescale_to_gt_mean(restored, target, gt_mean, channel_order)
    return restored, target


@METRIC_REGISTRY.register()
def calculate_psnr_lol(img, img2, crop_border=0, gt_mean=None, channel_order='bgr', **kwargs):
    """PSNR of the authors' LOL-v2 scripts: ``10 log10(1 / MSE)`` of the clipped float output (optionally GT-mean
    rescaled) against the ground truth, both in [0, 1]; 100 for identical images.

    Args:
        img, img2 (ndarray): restored and ground-truth images ``(H, W, C)`` on the 0-255 scale, float (unrounded)
            or uint8.
        crop_border (int): pixels left out on each side (0, the authors' protocol).
        gt_mean: ``~`` (off), ``'authors'`` or ``'corrected'`` (module docstring).
        channel_order (str): 'bgr' or 'rgb', the order of the arrays' channels (only GT-mean reads it).
    """
    restored, target = lol_images(img, img2, gt_mean, channel_order, kwargs, 'calculate_psnr_lol', crop_border)
    mse = float(np.mean((restored - target) ** 2))
    return 100.0 if mse == 0 else 10 * math.log10(1 / mse)


@METRIC_REGISTRY.register()
def calculate_ssim_lol(img, img2, crop_border=0, gt_mean=None, channel_order='bgr', **kwargs):
    """SSIM of the authors' LOL-v2 scripts: both images (the output clipped, optionally GT-mean rescaled) rounded
    to 8 bits half to even (``img_as_ubyte``), then BasicSR's ``calculate_ssim`` (Gaussian 11 x 11, sigma 1.5,
    mean over channels, ``crop_border: 0``). Arguments as :func:`calculate_psnr_lol`."""
    restored, target = lol_images(img, img2, gt_mean, channel_order, kwargs, 'calculate_ssim_lol', crop_border)
    return float(calculate_ssim(np.rint(restored * 255.0), np.rint(target * 255.0), crop_border=0))
