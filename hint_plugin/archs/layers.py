"""Building blocks shared by HINT's levels: channel LayerNorm, gated-dconv FFN, patch embedding, resampling.

Every module works on feature maps of shape ``(B, C, H, W)``. Attribute names (``body``, ``proj``,
``project_in`` ...) follow the reference implementation so released checkpoints load without renaming.
"""
import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs.ops import RecomputesStretches, pointwise_convs_of_recomputed, zero_pad
from hint_plugin.errors import OptionsError

LAYER_NORM_TYPES = ('WithBias', 'BiasFree')
# the FFN computes its hidden width padded to a multiple of this (GatedDconvFeedForward.hidden_multiple)
HIDDEN_MULTIPLE = 16


class _ChannelNormWithBias(nn.Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the channel axis of ``(B, C, H, W)``.

    PyTorch's fused ``layer_norm`` on the ``(B, H, W, C)`` view: free for channels-last tensors, and it keeps
    only the mean and inverse deviation for the backward pass.
    """

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        normalized = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return normalized.permute(0, 3, 1, 2)


class _ChannelNormBiasFree(nn.Module):
    """``x / sqrt(var + eps) * weight`` over the channel axis (the variance is still taken around the mean)."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x):
        var = x.var(1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(var + self.eps) * self.weight[:, None, None]


class ChannelLayerNorm(nn.Module):
    """Restormer's LayerNorm over channels, computed in place on ``(B, C, H, W)`` (no transposes).

    Args:
        channels (int): C.
        layer_norm_type (str): ``'WithBias'`` or ``'BiasFree'``.
    """

    def __init__(self, channels, layer_norm_type='WithBias'):
        super().__init__()
        if layer_norm_type not in LAYER_NORM_TYPES:
            raise OptionsError(f'LayerNorm_type must be one of {LAYER_NORM_TYPES}, got {layer_norm_type!r}')
        norm = _ChannelNormWithBias if layer_norm_type == 'WithBias' else _ChannelNormBiasFree
        self.body = norm(channels)

    def forward(self, x):
        return self.body(x)


class GatedDconvFeedForward(RecomputesStretches, nn.Module):
    """Gated-Dconv FFN: 1x1 conv to ``2*hidden``, 3x3 depthwise conv, ``gelu(x1) * x2``, 1x1 conv back.

    ``forward(x, norm=None)``: ``(B, C, H, W) -> (B, C, H, W)`` with ``hidden = int(C * expansion_factor)``;
    ``norm`` (the block's LayerNorm) is applied to ``x`` first.

    The two halves ``x1`` and ``x2`` are computed by two convolutions with the halves of the weights (the
    same parameters and products as one convolution and a ``chunk``): in channels-last memory a chunk along the
    channels would give strided halves, slower for the element-wise gate, and its backward pass a concatenation.
    The hidden width is computed zero-padded to a multiple of :attr:`hidden_multiple` (:func:`zero_pad`;
    the parameters keep the checkpoint's width).
    While training on maps of at least ``recompute_min_tokens`` tokens, the norm's output and the gate's are
    recomputed in the backward pass instead of kept (:func:`~hint_plugin.archs.ops.pointwise_convs_of_recomputed`):
    the FFN keeps ``x``, ``x1`` and ``x2``.
    """
    hidden_multiple = HIDDEN_MULTIPLE

    def __init__(self, channels, expansion_factor=2.66, bias=False):
        super().__init__()
        hidden = int(channels * expansion_factor)
        self.project_in = nn.Conv2d(channels, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)

    def computed_hidden(self):
        """The hidden width the FFN computes with: ``hidden`` rounded up to a multiple of ``hidden_multiple``,
        except under ``torch.jit`` tracing (complexity counts and ONNX export see the network as it is)."""
        hidden = self.project_out.in_channels
        if torch.jit.is_tracing():
            return hidden
        return -(-hidden // self.hidden_multiple) * self.hidden_multiple

    @staticmethod
    def _halves(conv, width):
        """``(weight, bias)`` of ``conv``'s first and second halves of output channels, zero-padded to ``width``."""
        n = conv.out_channels // 2
        halves = []
        for part in (slice(None, n), slice(n, None)):
            bias = None if conv.bias is None else zero_pad(conv.bias[part], 0, width)
            halves.append((zero_pad(conv.weight[part], 0, width), bias))
        return halves

    def _gate(self, x1, x2):
        width = x1.shape[1]  # depthwise: a group per (padded) channel
        (w1, b1), (w2, b2) = self._halves(self.dwconv, width)
        padding = self.dwconv.padding
        return F.gelu(F.conv2d(x1, w1, b1, padding=padding, groups=width)) * F.conv2d(
            x2, w2, b2, padding=padding, groups=width)

    def forward(self, x, norm=None):
        width = self.computed_hidden()
        halves = self._halves(self.project_in, width)
        out_conv = (zero_pad(self.project_out.weight, 1, width), self.project_out.bias)
        recompute = self.recomputes(x)
        if recompute and norm is not None:
            x1, x2 = pointwise_convs_of_recomputed(norm, (x, ), list(norm.parameters()), halves)
        else:
            normalized = x if norm is None else norm(x)
            x1, x2 = (F.conv2d(normalized, weight, bias) for weight, bias in halves)
        if not recompute:
            return F.conv2d(self._gate(x1, x2), *out_conv)
        out, = pointwise_convs_of_recomputed(self._gate, (x1, x2), list(self.dwconv.parameters()), [out_conv])
        return out


class PatchEmbed(nn.Module):
    """3x3 convolution from image channels to features: ``(B, C_in, H, W) -> (B, dim, H, W)``."""

    def __init__(self, in_channels=3, dim=48, bias=False):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 conv to ``C/2`` then pixel-unshuffle 2: ``(B, C, H, W) -> (B, 2C, H/2, W/2)``."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """3x3 conv to ``2C`` then pixel-shuffle 2: ``(B, C, H, W) -> (B, C/2, 2H, 2W)``."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)

