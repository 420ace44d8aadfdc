"""Building blocks shared by HINT's levels: channel LayerNorm, gated-dconv FFN, patch embedding, resampling.

Every module works on feature maps of shape ``(B, C, H, W)``. Attribute names (``body``, ``proj``,
``project_in`` ...) follow the reference implementation so released checkpoints load without renaming.
"""
import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs import ops
from hint_plugin.errors import OptionsError

LAYER_NORM_TYPES = ('WithBias', 'BiasFree')
HIDDEN_MULTIPLE = 16  # fast: the FFN's hidden width is computed padded to a multiple of this


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


class GatedDconvFeedForward(nn.Module):
    """Gated-Dconv FFN: ``x1 | x2 = dwconv(project_in(x))`` (3x3 depthwise, ``2 * hidden`` channels), then
    ``project_out(gelu(x1) * x2)``; ``(B, C, H, W) -> (B, C, H, W)``, ``hidden = int(C * expansion_factor)``.

    ``forward(x, norm=None)``: ``norm`` (the block's LayerNorm) is applied to ``x`` first. ``fast``: the same
    computed with the hidden width zero-padded to a multiple of 16 and, while training on maps of at least
    ``recompute_min_tokens`` tokens (None: never), the norm and the gate recomputed in the backward pass.
    """

    def __init__(self, channels, expansion_factor=2.66, bias=False, fast=True, recompute_min_tokens=None):
        super().__init__()
        hidden = int(channels * expansion_factor)
        self.project_in = nn.Conv2d(channels, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)
        self.fast, self.recompute_min_tokens = fast, recompute_min_tokens

    def forward(self, x, norm=None):
        if ops.restructures(self.fast):
            return self._fast_forward(x, norm)
        x1, x2 = self.dwconv(self.project_in(x if norm is None else norm(x))).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)

    def _fast_forward(self, x, norm):
        """The forward above with every convolution on ``width`` hidden channels (zero weights beyond
        ``hidden``), ``x1`` and ``x2`` by the halves of the weights (a channel chunk of a channels-last tensor
        would give strided halves), and the stretches before the 1x1 convolutions recomputed on large maps."""
        width = -(-self.project_out.in_channels // HIDDEN_MULTIPLE) * HIDDEN_MULTIPLE
        halves = (slice(None, self.project_out.in_channels), slice(self.project_out.in_channels, None))
        in_convs, dw_convs = ([(ops.zero_pad(conv.weight[part], 0, width),
                                None if conv.bias is None else ops.zero_pad(conv.bias[part], 0, width))
                               for part in halves] for conv in (self.project_in, self.dwconv))
        out_conv = [(ops.zero_pad(self.project_out.weight, 1, width), self.project_out.bias)]

        def gate(x1, x2):
            (w1, b1), (w2, b2) = dw_convs
            return F.gelu(F.conv2d(x1, w1, b1, padding=1, groups=width)) * F.conv2d(x2, w2, b2, padding=1,
                                                                                     groups=width)

        if not ops.recomputes(x, self.recompute_min_tokens):
            normalized = x if norm is None else norm(x)
            return F.conv2d(gate(*(F.conv2d(normalized, *conv) for conv in in_convs)), *out_conv[0])
        if norm is None:
            x1, x2 = (F.conv2d(x, *conv) for conv in in_convs)
        else:
            x1, x2 = ops.convs_of_recomputed(norm, (x, ), list(norm.parameters()), in_convs)
        return ops.convs_of_recomputed(gate, (x1, x2), list(self.dwconv.parameters()), out_conv)[0]


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

