"""HINT's building blocks (Restormer's, which HINT keeps), on ``(B, C, H, W)``: channel LayerNorm, gated-dconv
FFN, patch embedding, resampling; attribute names are the released checkpoints'."""
import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs import ops
from hint_plugin.errors import check_choice

LAYER_NORM_TYPES = ('WithBias', 'BiasFree')
HIDDEN_MULTIPLE = 16  # fast: the FFN's hidden width is computed padded to a multiple of this


class _ChannelNorm(nn.Module):
    def __init__(self, channels, with_bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x):
        if self.bias is None:  # BiasFree: divided by the deviation around the mean, the mean kept
            return x * torch.rsqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5) * self.weight[:, None, None]
        # the fused layer_norm on the (B, H, W, C) view: free for channels-last tensors
        return F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias).permute(0, 3, 1, 2)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of ``(B, C, H, W)``, ``'WithBias'`` or ``'BiasFree'``."""

    def __init__(self, channels, layer_norm_type='WithBias'):
        super().__init__()
        check_choice('LayerNorm_type', layer_norm_type, LAYER_NORM_TYPES)
        self.body = _ChannelNorm(channels, layer_norm_type == 'WithBias')

    def forward(self, x):
        return self.body(x)


class GatedDconvFeedForward(nn.Module):
    """Gated-Dconv FFN: ``x1 | x2 = dwconv(project_in(norm(x)))`` (3x3 depthwise, ``2 * hidden`` channels), then
    ``project_out(gelu(x1) * x2)``; ``(B, C, H, W)``, ``hidden = int(C * expansion_factor)``. ``fast``: the same
    with the hidden width zero-padded to a multiple of 16 and, while training on maps of at least
    ``recompute_min_tokens`` tokens (None: never), the norm and the gate recomputed in the backward pass."""

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
        """fast: ``x1`` and ``x2`` by the halves of the weights (a chunk of a channels-last tensor would give
        strided halves), each zero-padded to ``width`` hidden channels."""
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
    """3x3 conv to ``C/2``, pixel-unshuffle: ``(B, C, H, W) -> (B, 2C, H/2, W/2)``; ``Upsample``: the converse."""
    shuffle, factor = nn.PixelUnshuffle, 0.5

    def __init__(self, channels):
        super().__init__()
        conv = nn.Conv2d(channels, int(channels * self.factor), kernel_size=3, padding=1, bias=False)
        self.body = nn.Sequential(conv, self.shuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(Downsample):
    """3x3 conv to ``2C``, pixel-shuffle: ``(B, C, H, W) -> (B, C/2, 2H, 2W)``."""
    shuffle, factor = nn.PixelShuffle, 2
