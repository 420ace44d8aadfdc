"""HINT's building blocks, kept from Restormer, on ``(B, C, H, W)``; attribute names: the checkpoints' keys."""
import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs import ops

NO_NORM = nn.Identity()  # the ``norm`` of a layer called on its own: its input as it is


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels; ``'BiasFree'``: divided by the deviation, the mean kept."""

    def __init__(self, channels, layer_norm_type='WithBias'):
        super().__init__()
        self.body = nn.LayerNorm(channels, bias=layer_norm_type == 'WithBias')

    def forward(self, x):
        norm = self.body
        if norm.bias is None:
            return x * torch.rsqrt(x.var(1, keepdim=True, unbiased=False) + norm.eps) * norm.weight[:, None, None]
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # free for channels-last tensors


class GatedDconvFeedForward(nn.Module):
    """Gated-Dconv FFN, ``hidden = int(C * expansion_factor)``: ``x1 | x2 = dwconv(project_in(norm(x)))`` (3x3
    depthwise), ``project_out(gelu(x1) * x2)``."""

    def __init__(self, channels, expansion_factor, bias=False, fast=True, recompute_min_tokens=None):
        super().__init__()
        hidden = int(channels * expansion_factor)
        self.project_in = nn.Conv2d(channels, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)
        self.fast, self.recompute_min_tokens = fast, recompute_min_tokens

    def forward(self, x, norm=NO_NORM):
        if ops.restructures(self.fast):
            return self._fast_forward(x, norm)
        x1, x2 = self.dwconv(self.project_in(norm(x))).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)

    def _fast_forward(self, x, norm):
        """fast: ``x1``, ``x2`` by the weights' halves (a chunk of a channels-last tensor is strided), the hidden
        width zero-padded to a multiple of 16; on maps of ``recompute_min_tokens`` tokens, norm and gate recomputed."""
        hidden = self.project_out.in_channels
        width = -(-hidden // 16) * 16
        halves = (slice(None, hidden), slice(hidden, None))
        in_convs, dw_convs = ([[None if t is None else ops.zero_pad(t[h], 0, width) for t in (conv.weight, conv.bias)]
                               for h in halves] for conv in (self.project_in, self.dwconv))
        out_conv = [(ops.zero_pad(self.project_out.weight, 1, width), self.project_out.bias)]

        def gate(x1, x2):
            (w1, b1), (w2, b2) = dw_convs
            return F.gelu(F.conv2d(x1, w1, b1, padding=1, groups=width)) * F.conv2d(x2, w2, b2, padding=1,
                                                                                     groups=width)

        if ops.fuses_convolutions(x):  # fast, CPU inference: gelu and product fused, each map freed once used
            normalized = norm(x)
            gelu = ops.fused_conv(F.conv2d(normalized, *in_convs[0]), *dw_convs[0], width)
            x2 = F.conv2d(normalized, *in_convs[1])
            del normalized
            return F.conv2d(ops.fused_conv(x2, *dw_convs[1], width, gelu), *out_conv[0])
        if not ops.recomputes(x, self.recompute_min_tokens):
            normalized = norm(x)
            return F.conv2d(gate(*(F.conv2d(normalized, *conv) for conv in in_convs)), *out_conv[0])
        x1, x2 = ops.convs_of_recomputed(norm, (x, ), list(norm.parameters()), in_convs)
        return ops.convs_of_recomputed(gate, (x1, x2), list(self.dwconv.parameters()), out_conv)[0]


class PatchEmbed(nn.Module):
    """3x3 convolution, image to features: ``(B, C_in, H, W) -> (B, dim, H, W)``."""

    def __init__(self, in_channels, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 conv to ``C/2``, pixel-unshuffle: ``(B, C, H, W) -> (B, 2C, H/2, W/2)``."""
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
