"""QKCU: Query-Key Cache Updating, the two caches that let HINT's attention heads share what they learnt.

* Intra-layer cache: the L2-normalised query plus key features ``T = q + k`` (detached) gate the attention
  output: ``out = out + up(down(gelu(gate(out + T)) * (out + T)))``.
* Inter-layer cache: a ``(C, C)`` map carried from attention block to attention block within one forward
  call. Each head's attention map ``A_i`` is modulated by it, and the block passes on
  ``momentum * cache + (1 - momentum) * U`` where ``U`` sums the heads' maps resized to ``(C, C)``.

The two variants differ only in the :class:`VariantRule` below; nothing else in the package branches on the
variant name.
"""
from dataclasses import dataclass

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs.layers import RecomputesStretches

DEFAULT_HEAD_RATIOS = (1, 2, 2, 3)
DEFAULT_CACHE_MOMENTUM = 0.9


@dataclass(frozen=True)
class VariantRule:
    """Every behaviour that differs between the ``official`` and ``refined`` variants.

    Attributes:
        per_image: statistics (channel order, cache) are computed per sample; otherwise over the batch mean,
            which couples the images of a batch.
        true_division: the cache update weighs head ``i`` by ``C_i / C``; otherwise it computes
            ``floor_divide(resize(A_i) * C_i, C)`` as the released checkpoints do (mostly zeros and -1s).
        damp_first_update: the first attention block passes on ``momentum * U`` instead of ``U``.
        restore_order: the channel permutation is undone before the intra-layer gate and the projection.
    """
    per_image: bool
    true_division: bool
    damp_first_update: bool
    restore_order: bool


VARIANTS = {
    'official': VariantRule(per_image=False, true_division=False, damp_first_update=True, restore_order=False),
    'refined': VariantRule(per_image=True, true_division=True, damp_first_update=False, restore_order=True),
}


def get_variant(name):
    """The :class:`VariantRule` called ``name``; a clear ``ValueError`` for an unknown one."""
    if name not in VARIANTS:
        raise ValueError(f'variant must be one of {sorted(VARIANTS)}, got {name!r}')
    return VARIANTS[name]


def head_sizes(channels, ratios=DEFAULT_HEAD_RATIOS):
    """Split ``channels`` into heads of sizes ``r * channels / sum(ratios)``; they must be exact and non-zero."""
    total = sum(ratios)
    sizes = [r * channels // total for r in ratios]
    if any(r <= 0 for r in ratios) or sum(sizes) != channels or min(sizes) == 0:
        raise ValueError(f'{channels} channels cannot be split into heads with ratios {tuple(ratios)}: '
                         f'the channel count must be a positive multiple of {total}')
    return sizes


def batch_statistic(x, rule):
    """``x`` itself when statistics are per image, else its batch mean ``(1, ...)``."""
    return x if rule.per_image else x.mean(dim=0, keepdim=True)


def channel_mix(conv, x, channel_dim):
    """Apply a kernel-1 ``nn.Conv1d`` as the matrix product it is, along ``channel_dim`` (1 or -1) of ``x``.

    The cache layers are stored as Conv1d for checkpoint compatibility; PyTorch's generic Conv1d path is
    several times slower on CPU than one matrix product.
    """
    weight = conv.weight.squeeze(-1)
    if channel_dim == -1:
        return F.linear(x, weight, conv.bias)
    out = torch.matmul(weight, x)
    return out if conv.bias is None else out + conv.bias.unsqueeze(-1)


class IntraCacheModulation(RecomputesStretches, nn.Module):
    """Intra-layer cache gate over tokens ``(B, N, C)``: ``up(down(gelu(gatingConv(s)) * s))``, ``s = out + qk``."""

    def __init__(self, channels):
        super().__init__()
        self.down = nn.Conv1d(channels, channels // 2, kernel_size=1)
        self.up = nn.Conv1d(channels // 2, channels, kernel_size=1)
        self.gatingConv = nn.Conv1d(channels, channels, kernel_size=1)

    def _modulation(self, s):
        gated = F.gelu(channel_mix(self.gatingConv, s, -1)) * s
        return channel_mix(self.up, channel_mix(self.down, gated, -1), -1)

    def forward(self, out, qk_cache):
        return self.recompute(self._modulation, out + qk_cache)


class InterCacheModulation(nn.Module):
    """Inter-layer modulation of one head's attention map.

    ``attn``: ``(B, c, c)``; ``cache``: ``(1 or B, C, C)``. With ``scale, shift`` the halves of
    ``conv_width(avgpool_{c x c}(cache) + attn)`` (a Conv1d over the rows) and ``m = attn * scale + shift``,
    returns ``attn + m * gelu(gatingConv(m))``.
    """

    def __init__(self, head_channels):
        super().__init__()
        self.conv_width = nn.Conv1d(head_channels, 2 * head_channels, kernel_size=1)
        self.gatingConv = nn.Conv1d(head_channels, head_channels, kernel_size=1)

    def forward(self, attn, cache):
        head_cache = F.adaptive_avg_pool2d(cache, self.gatingConv.in_channels)
        scale, shift = channel_mix(self.conv_width, head_cache + attn, 1).chunk(2, dim=1)
        m = attn * scale + shift
        return attn + m * F.gelu(channel_mix(self.gatingConv, m, 1))


def _gather_channels(tokens, order):
    """``tokens[b, n, order[b, i]]`` for ``(B, N, C)`` tokens and an order ``(1 or B, C)``, by one gather."""
    index = order.unsqueeze(1).expand(tokens.shape[0], tokens.shape[1], -1)
    return torch.gather(tokens, -1, index)


class _ChannelPermutation(torch.autograd.Function):
    """:func:`permute_channels` with the inverse permutation as its backward pass.

    ``torch.gather``'s own backward zero-fills a gradient and scatter-adds into it, and keeps the whole input
    alive for its shape; a permutation's gradient is simply the gather by the inverse order.
    """

    @staticmethod
    def forward(ctx, tokens, order):
        ctx.save_for_backward(order)
        return _gather_channels(tokens, order)

    @staticmethod
    def backward(ctx, grad):
        order, = ctx.saved_tensors
        return _gather_channels(grad, torch.argsort(order, dim=1)), None


def permute_channels(tokens, order):
    """Re-index the channel (last) axis of tokens ``(B, N, C)`` by the permutation ``order`` ``(1 or B, C)``."""
    if torch.is_grad_enabled() and tokens.requires_grad:
        return _ChannelPermutation.apply(tokens, order)
    return _gather_channels(tokens, order)


@ARCH_REGISTRY.register()
class QKCU(nn.Module):
    """Query-Key Cache Updating for attention with per-head ``(c_i, c_i)`` maps over ``C`` channels.

    Args:
        dim (int): C, the channel count of the attention.
        head_ratios (sequence of int): relative head sizes (HINT: 1:2:2:3).
        cache_momentum (float): the inter-layer cache keeps ``momentum`` of its past (0.9).
        variant (str): ``'official'`` (the released checkpoints) or ``'refined'``; see :class:`VariantRule`.

    ``forward(maps, values, qk_cache, cache=None, order=None) -> (out, new_cache)``, on tokens (channels last):
        maps: list of ``(B, c_i, c_i)`` softmax attention maps; values: list of ``(B, N, c_i)``;
        qk_cache: ``(B, N, C)`` normalised query + key features; cache: ``(1 or B, C', C')`` from the previous
        attention block or ``None`` for the first one; order: ``(1 or B, C)`` channel permutation the heads
        were taken in (undone before the gate when the variant says so).
        out: ``(B, N, C)``, head ``i`` being ``v_i A_i^T``; new_cache: ``(1 or B, C, C)``, detached.
    """

    def __init__(self, dim, head_ratios=DEFAULT_HEAD_RATIOS, cache_momentum=DEFAULT_CACHE_MOMENTUM,
                 variant='official'):
        super().__init__()
        self._init_cache_modulators(dim, head_ratios, cache_momentum, variant)

    def _init_cache_modulators(self, dim, head_ratios, cache_momentum, variant):
        """Create ``intra_modulator`` and ``inter_modulator1..n`` (the checkpoint's names) on ``self``."""
        if not 0.0 <= cache_momentum <= 1.0:
            raise ValueError(f'cache_momentum must be in [0, 1], got {cache_momentum}')
        self.rule = get_variant(variant)
        self.head_channels = head_sizes(dim, head_ratios)
        self.cache_momentum = cache_momentum
        self.intra_modulator = IntraCacheModulation(dim)
        for i, channels in enumerate(self.head_channels, start=1):
            setattr(self, f'inter_modulator{i}', InterCacheModulation(channels))

    @property
    def inter_modulators(self):
        return [getattr(self, f'inter_modulator{i}') for i in range(1, len(self.head_channels) + 1)]

    def modulate_maps(self, maps, cache):
        """Apply the inter-layer cache (already pooled to ``(C, C)``) to each head's map; identity without one."""
        if cache is None:
            return maps
        return [modulator(attn, cache) for modulator, attn in zip(self.inter_modulators, maps)]

    def update_cache(self, maps, cache):
        """The cache passed to the next attention block, ``(1 or B, C, C)``, from this block's final maps."""
        channels = sum(self.head_channels)
        update = None
        for attn, c_i in zip(maps, self.head_channels):
            stat = batch_statistic(attn.detach(), self.rule).unsqueeze(1)
            resized = F.interpolate(stat, size=(channels, channels), mode='bilinear', align_corners=False)
            term = resized * (c_i / channels) if self.rule.true_division else resized * c_i // channels
            update = term if update is None else update + term
        update = update.squeeze(1)
        if cache is None:
            return update * self.cache_momentum if self.rule.damp_first_update else update
        return cache * self.cache_momentum + update * (1 - self.cache_momentum)

    def align_cache(self, cache):
        """Adaptive-average-pool an incoming ``(1 or B, C', C')`` cache to this block's ``(C, C)``."""
        channels = sum(self.head_channels)
        if cache is None or cache.shape[-1] == channels:
            return cache
        return F.adaptive_avg_pool2d(cache, channels)

    def forward(self, maps, values, qk_cache, cache=None, order=None):
        cache = self.align_cache(cache)
        maps = self.modulate_maps(maps, cache)
        out = torch.cat([v @ attn.transpose(1, 2) for attn, v in zip(maps, values)], dim=-1)
        if order is not None and self.rule.restore_order:
            inverse = torch.argsort(order, dim=1)
            out, qk_cache = permute_channels(out, inverse), permute_channels(qk_cache, inverse)
        out = out + self.intra_modulator(out, qk_cache)
        return out, self.update_cache(maps, cache)
