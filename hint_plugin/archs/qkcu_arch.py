"""QKCU, Query-Key Cache Updating (the paper's QKCU section): tokens ``(B, N, C)``, head ``i`` of ``c_i``
channels, map ``A_i`` ``(B, c_i, c_i)``. Intra-layer cache: ``q + k`` gates the heads' output. Inter-layer
cache: a map ``M`` ``(C, C)`` modulates each head's map, passed on as ``momentum * M + (1 - momentum) * U``."""
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs import ops
from hint_plugin.errors import OptionsError, check_choice, check_int_list

DEFAULT_HEAD_RATIOS = (1, 2, 2, 3)
DEFAULT_CACHE_MOMENTUM = 0.9


@dataclass(frozen=True)
class VariantRule:
    """What differs between the variants; ``official`` (the authors' code, the released checkpoints) has batch-mean
    statistics, ``// C`` in the cache update, a damped first update and the order never undone, each marked
    ``official:``."""
    per_image: bool
    true_division: bool
    damp_first_update: bool
    restore_order: bool


VARIANTS = {'official': VariantRule(False, False, True, False), 'refined': VariantRule(True, True, False, True)}


def get_variant(name):
    check_choice('variant', name, VARIANTS)
    return VARIANTS[name]


def resolve_cache_rounding(variant, cache_rounding=None):
    """official: ``'trunc'`` (torch 1.12's ``//``, the checkpoints'; default) or ``'floor'``; refined: ``None``."""
    exact = get_variant(variant).true_division
    if cache_rounding is not None:
        check_choice('cache_rounding', cache_rounding, ('trunc', 'floor'))
        if exact:
            raise OptionsError(f'cache_rounding only applies to the official variant; {variant!r} divides exactly')
    return None if exact else cache_rounding or 'trunc'


def resolve_cache_init(variant, cache_init=None):
    """``cache_init`` (:class:`CarriesCache`), default ``'zeros'``."""
    cache_init = 'zeros' if cache_init is None else cache_init
    check_choice('cache_init', cache_init, ('carry', 'zeros', 'none'))
    if cache_init == 'carry' and get_variant(variant).per_image:
        raise OptionsError(f'cache_init: carry is not available for variant {variant!r}: an image\'s output would '
                           'depend on the images restored before it')
    return cache_init


def head_sizes(channels, ratios):
    """The heads' unequal sizes: ``channels`` split in the ``ratios`` (1:2:2:3)."""
    check_int_list('head_ratios', ratios, None, 1)
    sizes = [r * channels // sum(ratios) for r in ratios]
    if sum(sizes) != channels or min(sizes, default=0) == 0:
        raise OptionsError(f'{channels} channels cannot be split into heads with ratios {tuple(ratios)}: '
                           f'ratio * {channels} / {sum(ratios)} must be a whole number >= 1 for each')
    return sizes


def batch_statistic(x, rule):
    """official: ``x``'s batch mean ``(1, ...)``; else ``x`` (statistics per image)."""
    return x if rule.per_image else x.mean(dim=0, keepdim=True)


def gather_channels(tokens, order):
    """The channels of tokens ``(B, N, C)`` taken in ``order`` ``(1 or B, C)``."""
    return torch.gather(tokens, -1, order.unsqueeze(1).expand(tokens.shape[0], tokens.shape[1], -1))


class IntraCacheModulation(nn.Module):
    """Intra-layer gate, tokens ``(B, N, C)``: ``up(down(gelu(gatingConv(s)) * s))``, ``s = out + qk``."""

    def __init__(self, channels, fast):
        super().__init__()
        self.down = nn.Conv1d(channels, channels // 2, kernel_size=1)
        self.up = nn.Conv1d(channels // 2, channels, kernel_size=1)
        self.gatingConv = nn.Conv1d(channels, channels, kernel_size=1)
        self.fast = fast

    def forward(self, out, qk):
        s = out + qk
        if self.fast:  # fast: the Conv1d layers as 1x1 conv2d of the tokens' channels-last view
            gated = F.gelu(ops.channel_mix(self.gatingConv, s)) * s
            return ops.channel_mix(self.up, ops.channel_mix(self.down, gated))
        s = s.transpose(1, 2)  # (B, C, N), Conv1d's layout
        return self.up(self.down(F.gelu(self.gatingConv(s)) * s)).transpose(1, 2)


class InterCacheModulation(nn.Module):
    """Inter-layer modulation of a head's map ``attn`` ``(B, c, c)`` by the cache ``(1 or B, C, C)``:
    ``attn + m * gelu(gatingConv(m))``, ``m = attn * scale + shift``, ``scale | shift = conv_width(pool(cache) +
    attn)``."""

    def __init__(self, head_channels, fast):
        super().__init__()
        self.conv_width = nn.Conv1d(head_channels, 2 * head_channels, kernel_size=1)
        self.gatingConv = nn.Conv1d(head_channels, head_channels, kernel_size=1)
        self.fast = fast

    def forward(self, attn, cache):
        def mix(conv, x):  # fast: the Conv1d layers as matrix products
            return conv.weight.squeeze(-1) @ x + conv.bias[:, None] if self.fast else conv(x)

        pooled = F.adaptive_avg_pool2d(cache, self.gatingConv.in_channels)
        scale, shift = mix(self.conv_width, pooled + attn).chunk(2, dim=1)
        m = attn * scale + shift
        return attn + m * F.gelu(mix(self.gatingConv, m))


def cache_update(maps, head_channels, rule, rounding):
    """``U`` ``(1 or B, C, C)``: the heads' maps (detached) resized bilinearly to ``(C, C)``, weighed by ``c_i / C``,
    summed; official: ``resize(A_i) * c_i // C``, rounded by ``rounding``."""
    channels = sum(head_channels)
    update = 0
    for attn, c_i in zip(maps, head_channels):
        resized = F.interpolate(batch_statistic(attn.detach(), rule).unsqueeze(1), size=(channels, channels),
                                mode='bilinear', align_corners=False).squeeze(1)
        if rule.true_division:
            update = update + resized * (c_i / channels)
        else:  # official: an integer division, as the authors' `resized * c_i // C`
            update = update + torch.div(resized * c_i, channels, rounding_mode=rounding)
    return update


class CarriesCache:
    """Where a call's first attention block starts (``cache_init``): ``'none'``, ``'zeros'`` or ``'carry'``, the
    previous call's final cache, detached, as the authors' HINT keeps it."""
    cache_init = 'none'
    carried_cache = None

    def reset_cache(self):
        self.carried_cache = None

    def start_cache(self, like, channels):
        if self.cache_init == 'zeros':
            return like.new_zeros(1, channels, channels)
        if self.cache_init == 'carry':
            if torch.onnx.is_in_onnx_export():
                raise RuntimeError('cache_init: carry keeps state between calls, which an exported graph cannot; '
                                   'export with cache_init: zeros')
            if self.carried_cache is not None:
                return self.carried_cache.to(like)
        return None

    def keep_cache(self, cache):
        if self.cache_init == 'carry' and cache is not None:
            self.carried_cache = cache.detach()


class QKCU(nn.Module):
    """QKCU for ``dim`` channels in heads of ``head_ratios`` (HMHA holds one); ``cache_momentum``: the share of
    its past the inter-layer cache keeps."""

    def __init__(self, dim, head_ratios=DEFAULT_HEAD_RATIOS, cache_momentum=DEFAULT_CACHE_MOMENTUM,
                 variant='official', cache_rounding=None, fast=True):
        super().__init__()
        if not 0.0 <= cache_momentum <= 1.0:
            raise OptionsError(f'cache_momentum must be in [0, 1], got {cache_momentum}')
        self.rule = get_variant(variant)
        self.cache_rounding = resolve_cache_rounding(variant, cache_rounding)
        self.head_channels = head_sizes(dim, head_ratios)
        self.cache_momentum = cache_momentum
        self.intra_modulator = IntraCacheModulation(dim, fast)
        for i, channels in enumerate(self.head_channels, start=1):  # the released checkpoints' names
            self.add_module(f'inter_modulator{i}', InterCacheModulation(channels, fast))

    def attend(self, maps, values, cache=None):
        """The inter-layer cache: heads ``v_i A_i^T`` side by side ``(B, N, C)`` (values ``(B, N, c_i)``), each map
        modulated by the cache ``(1 or B, C', C')`` pooled to ``(C, C)``, if any; returns them and the next cache."""
        channels = sum(self.head_channels)
        if cache is not None:
            cache = F.adaptive_avg_pool2d(cache, channels) if cache.shape[-1] != channels else cache
            maps = [getattr(self, f'inter_modulator{i}')(attn, cache) for i, attn in enumerate(maps, start=1)]
        heads = torch.cat([v @ attn.transpose(1, 2) for attn, v in zip(maps, values)], dim=-1)
        update = cache_update(maps, self.head_channels, self.rule, self.cache_rounding)
        if cache is not None:
            return heads, cache * self.cache_momentum + update * (1 - self.cache_momentum)
        return heads, update * self.cache_momentum if self.rule.damp_first_update else update  # official: damped

    def gate(self, heads, qk, order=None):
        """The intra-layer cache: ``heads + intra_modulator(heads, qk)``, ``qk`` ``(B, N, C)``; refined first undoes
        the ``order`` ``(1 or B, C)`` (official: stays sorted)."""
        if order is not None and self.rule.restore_order:
            inverse = torch.argsort(order, dim=1)
            heads, qk = gather_channels(heads, inverse), gather_channels(qk, inverse)
        return heads + self.intra_modulator(heads, qk)

    def forward(self, maps, values, qk, cache=None, order=None):
        heads, cache = self.attend(maps, values, cache)
        return self.gate(heads, qk, order), cache
