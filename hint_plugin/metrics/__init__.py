"""Auto-import every ``*_metric.py`` here so its functions register in BasicSR's ``METRIC_REGISTRY``.

The HINT authors' evaluation protocols (``val.metrics.<name>.type`` in an option file):

* ``calculate_psnr_lol`` / ``calculate_ssim_lol``: LOL-v2, PSNR on the clipped float output, SSIM on it rounded
  to 8 bits, optional GT-mean rescaling (:mod:`hint_plugin.metrics.lowlight_metric`);
* ``calculate_psnr_y_matlab`` / ``calculate_ssim_y_matlab``: Rain100L, on the Y channel of MATLAB's
  ``rgb2ycbcr`` rounded to 8 bits (:mod:`hint_plugin.metrics.matlab_y_metric`);
* ``calculate_maniqa``: no-reference MANIQA through pyiqa (:mod:`hint_plugin.metrics.maniqa_metric`).

SOTS, Snow100K and colour denoising use BasicSR's own ``calculate_psnr`` / ``calculate_ssim`` (8-bit RGB,
``crop_border: 0``), which compute what the authors' scripts compute.
"""
from os import path as osp

from hint_plugin.utils.registry import import_modules_ending_with

_modules = import_modules_ending_with(__name__, osp.dirname(osp.abspath(__file__)), '_metric.py')
