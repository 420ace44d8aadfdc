"""FFTLoss against NumPy, its reductions and weights."""
import math

import numpy as np
import pytest
import torch
from basicsr.losses import build_loss

import hint_plugin.losses  # noqa: F401  (registers the losses)
from hint_plugin.losses.fft_loss import FFTLoss


def numpy_fft_l1(pred, target):
    """Element-wise ``(N, C, H, W, 2)`` |difference| of the real and imaginary parts of the 2-D spectra."""
    diff = np.fft.fft2(pred.double().numpy()) - np.fft.fft2(target.double().numpy())
    return np.abs(np.stack([diff.real, diff.imag], axis=-1))


@pytest.fixture
def pair():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 8, 6, generator=generator), torch.rand(2, 3, 8, 6, generator=generator)


def test_fft_loss_matches_numpy_for_every_reduction(pair):
    pred, target = pair
    expected = numpy_fft_l1(pred, target)
    assert np.allclose(FFTLoss(reduction='none')(pred, target).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert FFTLoss(reduction='none')(pred, target).shape == (2, 3, 8, 6, 2)
    assert math.isclose(FFTLoss()(pred, target).item(), expected.mean(), rel_tol=1e-5)
    assert math.isclose(FFTLoss(reduction='sum')(pred, target).item(), expected.sum(), rel_tol=1e-5)
    assert math.isclose(FFTLoss(loss_weight=0.1)(pred, target).item(), 0.1 * expected.mean(), rel_tol=1e-5)
    assert FFTLoss()(pred, pred).item() == 0


def test_fft_loss_registry_weight_and_gradient(pair):
    pred, target = pair
    loss = build_loss({'type': 'FFTLoss', 'loss_weight': 0.5, 'reduction': 'mean'})
    assert isinstance(loss, FFTLoss) and loss.loss_weight == 0.5
    expected = numpy_fft_l1(pred, target)
    weight = torch.zeros(2, 1, 8, 6)
    weight[:, :, :4] = 1  # the first four rows of frequencies only
    assert math.isclose(loss(pred, target, weight).item(), 0.5 * expected[:, :, :4].mean(), rel_tol=1e-5)
    pred = pred.clone().requires_grad_()
    loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_fft_loss_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="'avg'.*none.*mean.*sum"):
        FFTLoss(reduction='avg')
