"""Rain100L's metrics: Y of MATLAB's rgb2ycbcr rounded to 8 bits, then PSNR / SSIM (evaluate_PSNR_SSIM.m)."""
import math

import numpy as np
import pytest
from basicsr.metrics import calculate_psnr
from basicsr.utils.registry import METRIC_REGISTRY

from hint_plugin.metrics.matlab_y_metric import calculate_psnr_y_matlab, calculate_ssim_y_matlab, matlab_y


def colour(rgb, shape=(12, 12)):
    """A constant BGR uint8 image of the RGB colour ``rgb``."""
    return np.tile(np.array(rgb[::-1], dtype=np.uint8), (*shape, 1))


def test_registered_under_their_names():
    assert METRIC_REGISTRY.get('calculate_psnr_y_matlab') is calculate_psnr_y_matlab
    assert METRIC_REGISTRY.get('calculate_ssim_y_matlab') is calculate_ssim_y_matlab


def test_y_by_hand():
    # Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded
    assert matlab_y(colour((0, 0, 0)))[0, 0] == 16
    assert matlab_y(colour((255, 255, 255)))[0, 0] == 235
    assert matlab_y(colour((255, 0, 0)))[0, 0] == 81  # 81.481
    assert matlab_y(colour((0, 255, 0)))[0, 0] == 145  # 144.553
    assert matlab_y(colour((1, 173, 225)))[0, 0] == 126  # exactly 125.5: half up
    rgb = colour((255, 0, 0))[..., ::-1]
    assert matlab_y(rgb, channel_order='rgb')[0, 0] == 81
    assert matlab_y(np.full((3, 4, 1), 7, np.uint8)).tolist() == [[7] * 4] * 3  # grey: as it is


def test_psnr_on_the_rounded_y_differs_from_basicsr_unrounded_y():
    red, black = colour((255, 0, 0)), colour((0, 0, 0))
    assert calculate_psnr_y_matlab(red, black) == pytest.approx(20 * math.log10(255 / 65))  # 81 - 16
    unrounded = calculate_psnr(red, black, crop_border=0, test_y_channel=True)  # 65.481 apart
    assert unrounded == pytest.approx(20 * math.log10(255 / 65.481), abs=1e-3)
    assert calculate_psnr_y_matlab(red, red) == math.inf


def test_float_inputs_are_rounded_like_the_saved_pngs():
    red = colour((255, 0, 0)).astype(np.float64)
    red[..., 2] = 254.5  # rounds half to even: 254
    assert calculate_psnr_y_matlab(red, colour((254, 0, 0))) == math.inf
    assert calculate_psnr_y_matlab(red + 400, colour((255, 255, 255))) == math.inf  # clipped to 255


def test_ssim_by_hand_on_constant_images():
    # constant Y a = 81 and b = 16: SSIM = (2 a b + C1) / (a^2 + b^2 + C1)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 81 * 16 + c1) / (81 ** 2 + 16 ** 2 + c1)
    assert calculate_ssim_y_matlab(colour((255, 0, 0)), colour((0, 0, 0))) == pytest.approx(expected, rel=1e-12)


def test_refusals():
    with pytest.raises(ValueError, match='11 x 11'):
        calculate_ssim_y_matlab(colour((1, 2, 3), (10, 20)), colour((1, 2, 3), (10, 20)))
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_psnr_y_matlab(colour((1, 2, 3)), colour((1, 2, 3), (12, 13)))
    with pytest.raises(ValueError, match='unknown option.*test_y_channel'):
        calculate_psnr_y_matlab(colour((1, 2, 3)), colour((1, 2, 3)), test_y_channel=True)
    assert calculate_psnr_y_matlab(colour((1, 2, 3)), colour((1, 2, 3)), better='higher') == math.inf


def test_crop_border_leaves_the_edges_out():
    black = colour((0, 0, 0))
    framed = colour((255, 255, 255))
    framed[2:-2, 2:-2] = 0
    assert calculate_psnr_y_matlab(framed, black, crop_border=2) == math.inf
    assert calculate_psnr_y_matlab(framed, black) == pytest.approx(20 * math.log10(255 / 219 / math.sqrt(80 / 144)))
