"""Frequency-domain L1 loss."""
import torch
from basicsr.losses.basic_loss import l1_loss
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

_REDUCTIONS = ('none', 'mean', 'sum')


def _fft_real_imag(x):
    """``(..., H, W)`` real -> ``(..., H, W, 2)``: real and imaginary parts of the 2-D FFT over H, W."""
    spectrum = torch.fft.fft2(x)
    return torch.stack([spectrum.real, spectrum.imag], dim=-1)


@LOSS_REGISTRY.register()
class FFTLoss(nn.Module):
    """L1 distance between the 2-D Fourier spectra (real and imaginary parts) of prediction and target.

    Args:
        loss_weight (float): multiplies the loss. Default: 1.0.
        reduction (str): 'none' | 'mean' | 'sum'. Default: 'mean'.
    """

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'Unsupported reduction mode: {reduction!r}. Supported ones are: {list(_REDUCTIONS)}')
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self, pred, target, weight=None, **kwargs):
        """
        Args:
            pred (Tensor): ``(N, C, H, W)`` prediction.
            target (Tensor): ``(N, C, H, W)`` ground truth.
            weight (Tensor, optional): ``(N, C or 1, H, W)`` weights of the frequency coefficients, applied to
                their real and imaginary parts alike. Default: None.

        Returns:
            Tensor: a scalar, or ``(N, C, H, W, 2)`` (last dim: real, imaginary) with reduction 'none'.
        """
        if weight is not None:
            weight = weight.unsqueeze(-1).expand(*weight.shape, 2)
        return self.loss_weight * l1_loss(
            _fft_real_imag(pred), _fft_real_imag(target), weight, reduction=self.reduction)
