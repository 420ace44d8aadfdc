"""The authors' LOL-v2 metrics: PSNR of the clipped float output, SSIM on 8 bits, GT-mean (quirk and corrected)."""
import math

import numpy as np
import pytest
from basicsr.metrics import calculate_metric
from basicsr.utils.registry import METRIC_REGISTRY

from hint_plugin.metrics.lowlight_metric import calculate_psnr_lol, calculate_ssim_lol


def constant(value, shape=(12, 12, 3), dtype=np.float64):
    return np.full(shape, value, dtype=dtype)


def test_registered_under_their_names():
    assert METRIC_REGISTRY.get('calculate_psnr_lol') is calculate_psnr_lol
    assert METRIC_REGISTRY.get('calculate_ssim_lol') is calculate_ssim_lol


def test_psnr_is_taken_on_the_unrounded_float_output():
    # 127.5 / 255 = 0.5 against 0: MSE 0.25 -> 10 log10(4); rounded to 128 it would be 10 log10(255^2 / 128^2)
    assert calculate_psnr_lol(constant(127.5), constant(0, dtype=np.uint8)) == pytest.approx(10 * math.log10(4))
    assert calculate_psnr_lol(constant(128.0), constant(0)) == pytest.approx(20 * math.log10(255 / 128))


def test_psnr_clips_the_output_and_gives_100_for_identical_images():
    assert calculate_psnr_lol(constant(300.0), constant(255.0)) == 100.0  # clipped to 1 = the ground truth
    assert calculate_psnr_lol(constant(-5.0), constant(51.0)) == pytest.approx(10 * math.log10(1 / 0.2 ** 2))


def test_ssim_rounds_to_8_bits_half_to_even():
    # constant images: SSIM = (2 a b + C1) / (a^2 + b^2 + C1); 127.5 rounds to 128, 100.5 to 100
    c1 = (0.01 * 255) ** 2
    expected = (2 * 128 * 100 + c1) / (128 ** 2 + 100 ** 2 + c1)
    assert calculate_ssim_lol(constant(127.5), constant(100.5)) == pytest.approx(expected, rel=1e-12)
    assert calculate_ssim_lol(constant(127.4), constant(127.0)) == pytest.approx(1.0)


def test_gt_mean_authors_quirk_and_corrected_by_hand():
    # one RGB colour: output (0.2, 0.4, 0.6), ground truth (0.4, 0.4, 0.4)
    out_rgb, gt_rgb = np.array([0.2, 0.4, 0.6]), np.array([0.4, 0.4, 0.4])
    corrected = 0.4 / (0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6)  # 0.4 / 0.363
    quirk = 0.4 / (0.114 * 0.2 + 0.587 * 0.4 + 0.299 * 0.6)  # cv2 BGR2GRAY read on RGB: 0.4 / 0.437
    out_bgr = np.tile(out_rgb[::-1] * 255, (12, 12, 1))
    gt_bgr = np.tile(gt_rgb[::-1] * 255, (12, 12, 1))
    for mode, scale in (('corrected', corrected), ('authors', quirk)):
        rescaled = np.clip(out_rgb * scale, 0, 1)
        expected = 10 * math.log10(1 / np.mean((rescaled - gt_rgb) ** 2))
        assert calculate_psnr_lol(out_bgr, gt_bgr, gt_mean=mode) == pytest.approx(expected, rel=1e-12)
        assert calculate_psnr_lol(out_bgr[..., ::-1], gt_bgr[..., ::-1], gt_mean=mode,
                                  channel_order='rgb') == pytest.approx(expected, rel=1e-12)
    off = 10 * math.log10(1 / np.mean((out_rgb - gt_rgb) ** 2))
    assert calculate_psnr_lol(out_bgr, gt_bgr) == pytest.approx(off)
    assert corrected != pytest.approx(quirk)


def test_gt_mean_rescales_before_the_ssim_rounding():
    # grey output 0.25 -> 63.75 and ground truth 0.5 -> 127.5: GT-mean doubles the output; both round to 128
    assert calculate_ssim_lol(constant(63.75), constant(127.5), gt_mean='corrected') == pytest.approx(1.0)
    assert calculate_ssim_lol(constant(63.75), constant(127.5)) < 0.9


def test_through_basicsr_calculate_metric_and_refusals():
    opt = {'type': 'calculate_psnr_lol', 'gt_mean': 'authors', 'better': 'higher'}
    assert calculate_metric({'img': constant(127.5), 'img2': constant(127.5)}, opt) == 100.0
    with pytest.raises(ValueError, match='gt_mean'):
        calculate_psnr_lol(constant(1.0), constant(1.0), gt_mean=True)
    with pytest.raises(ValueError, match='unknown option.*test_y_channel'):
        calculate_ssim_lol(constant(1.0), constant(1.0), test_y_channel=False)
    with pytest.raises(ValueError, match='crop_border must be an integer'):
        calculate_ssim_lol(constant(1.0), constant(1.0), crop_border=-1)
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_psnr_lol(constant(1.0), constant(1.0, shape=(12, 11, 3)))
    with pytest.raises(ValueError, match='black'):
        calculate_psnr_lol(constant(0.0), constant(1.0), gt_mean='corrected')
    with pytest.raises(ValueError, match='channel_order'):
        calculate_psnr_lol(constant(1.0), constant(1.0), gt_mean='corrected', channel_order='RGB')


def test_crop_border_leaves_the_edges_out():
    out = constant(0.0)
    out[1:-1, 1:-1] = 255.0  # wrong only on the one-pixel frame
    assert calculate_psnr_lol(out, constant(255.0), crop_border=1) == 100.0
    assert calculate_psnr_lol(out, constant(255.0)) == pytest.approx(10 * math.log10(144 / 44))  # 44 of 144 off
