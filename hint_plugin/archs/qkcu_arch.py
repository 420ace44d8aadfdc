"""QKCU, Query-Key Cache Updating (the HINT paper's QKCU section): the caches through which HMHA's heads share
what they attend to. Tokens ``(B, N, C)``; head ``i`` has ``c_i`` channels and a map ``A_i`` ``(B, c_i, c_i)``.

* intra-layer cache, within a block: ``T = q + k`` gates the heads' output ``O`` (:class:`IntraCacheModulation`);
* inter-layer cache, block to block: a ``(C, C)`` map ``M`` modulates each head's map
  (:class:`InterCacheModulation`) and is passed on as ``momentum * M + (1 - momentum) * U`` (:func:`cache_update`).
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs import ops
from hint_plugin.errors import OptionsError, check_choice

DEFAULT_HEAD_RATIOS = (1, 2, 2, 3)
DEFAULT_CACHE_MOMENTUM = 0.9
CACHE_ROUNDINGS = ('trunc', 'floor')
CACHE_INITS = ('carry', 'zeros', 'none')  # see CarriesCache; zeros is the default (docs/variants.md)


@dataclass(frozen=True)
class VariantRule:
    """What differs between the variants; ``official`` is the authors' code (the released checkpoints), each of
    its quirks marked ``official:`` where it happens. ``per_image``: statistics per image (official: the batch
    mean); ``true_division``: the cache update weighs by ``c_i / C`` (official: ``// C``, rounded by
    ``cache_rounding``); ``damp_first_update``: the first block passes on ``momentum * U``; ``restore_order``:
    the channel order is undone before the intra-layer gate (official: never undone)."""
    per_image: bool
    true_division: bool
    damp_first_update: bool
    restore_order: bool


VARIANTS = {'official': VariantRule(False, False, True, False), 'refined': VariantRule(True, True, False, True)}


def get_variant(name):
    check_choice('variant', name, VARIANTS)
    return VARIANTS[name]


def resolve_cache_rounding(variant, cache_rounding=None):
    """official: ``'trunc'`` (default: torch 1.12's ``//``, the released checkpoints) or ``'floor'`` (torch >=
    1.13's); ``None`` for refined, which divides exactly."""
    if cache_rounding is not None:
        check_choice('cache_rounding', cache_rounding, CACHE_ROUNDINGS)
        if get_variant(variant).true_division:
            raise OptionsError(f'cache_rounding only applies to the official variant; variant {variant!r} divides '
                               'exactly (leave cache_rounding unset)')
    return None if get_variant(variant).true_division else cache_rounding or 'trunc'


def resolve_cache_init(variant, cache_init=None):
    """``cache_init`` (default ``'zeros'``); ``carry`` is refused where images must stay independent."""
    cache_init = 'zeros' if cache_init is None else cache_init
    check_choice('cache_init', cache_init, CACHE_INITS)
    if cache_init == 'carry' and get_variant(variant).per_image:
        raise OptionsError(f'cache_init: carry is not available for variant {variant!r}: a cache carried from the '
                           'previous call would make an image\'s output depend on what was restored before it')
    return cache_init


def head_sizes(channels, ratios=DEFAULT_HEAD_RATIOS):
    """HMHA's heads: ``channels`` split in the ``ratios`` (1:2:2:3), ``r * channels / sum(ratios)`` each."""
    if not isinstance(ratios, (list, tuple)) or not ratios or any(
            isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in ratios):
        raise OptionsError(f'head_ratios must be a list of positive integers (relative head sizes, e.g. '
                           f'[1, 2, 2, 3]), got {ratios!r}')
    sizes = [r * channels // sum(ratios) for r in ratios]
    if sum(sizes) != channels or min(sizes) == 0:
        raise OptionsError(f'{channels} channels cannot be split into heads with ratios {tuple(ratios)}: each '
                           f'head, ratio * {channels} / {sum(ratios)} channels, must be a whole number >= 1')
    return sizes


def batch_statistic(x, rule):
    """``x`` itself when statistics are per image; official: its batch mean ``(1, ...)``."""
    return x if rule.per_image else x.mean(dim=0, keepdim=True)


class IntraCacheModulation(nn.Module):
    """Intra-layer cache gate on tokens ``(B, N, C)``: ``up(down(gelu(gatingConv(s)) * s))``, ``s = out + qk``."""

    def __init__(self, channels, fast=True):
        super().__init__()
        self.down = nn.Conv1d(channels, channels // 2, kernel_size=1)
        self.up = nn.Conv1d(channels // 2, channels, kernel_size=1)
        self.gatingConv = nn.Conv1d(channels, channels, kernel_size=1)
        self.fast = fast

    def forward(self, out, qk):
        s = out + qk
        if self.fast:  # fast: the Conv1d layers as 1x1 conv2d of the tokens' channels-last view
            gated = F.gelu(ops.channel_mix(self.gatingConv, s, -1)) * s
            return ops.channel_mix(self.up, ops.channel_mix(self.down, gated, -1), -1)
        s = s.transpose(1, 2)  # (B, C, N), Conv1d's layout
        return self.up(self.down(F.gelu(self.gatingConv(s)) * s)).transpose(1, 2)


class InterCacheModulation(nn.Module):
    """Inter-layer modulation of a head's map ``attn`` ``(B, c, c)`` by the cache ``(1 or B, C, C)``: with ``scale |
    shift = conv_width(pool_c(cache) + attn)``, ``m = attn * scale + shift``: ``attn + m * gelu(gatingConv(m))``."""

    def __init__(self, head_channels, fast=True):
        super().__init__()
        self.conv_width = nn.Conv1d(head_channels, 2 * head_channels, kernel_size=1)
        self.gatingConv = nn.Conv1d(head_channels, head_channels, kernel_size=1)
        self.fast = fast

    def forward(self, attn, cache):
        mix = (lambda conv, x: ops.channel_mix(conv, x, 1)) if self.fast else (lambda conv, x: conv(x))
        pooled = F.adaptive_avg_pool2d(cache, self.gatingConv.in_channels)
        scale, shift = mix(self.conv_width, pooled + attn).chunk(2, dim=1)
        m = attn * scale + shift
        return attn + m * F.gelu(mix(self.gatingConv, m))


def cache_update(maps, head_channels, rule, rounding):
    """``U`` ``(1 or B, C, C)``: the heads' maps (detached) resized bilinearly to ``(C, C)``, weighed by ``c_i / C``
    and summed; official: weighed as ``resize(A_i) * c_i // C``, ``//`` rounded by ``rounding``."""
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
    """Where a call's first attention block starts (``cache_init``): ``'none'``, ``'zeros'`` (a ``(1, C, C)``
    zero cache) or ``'carry'``: the previous call's final cache, detached, as the authors' HINT keeps it (none
    on the first call and after :meth:`reset_cache`; per process, not in the state dict)."""
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
                                   'export with cache_init: zeros (equal to carry while the carried cache is zero)')
            if self.carried_cache is not None:
                return self.carried_cache.to(like)
        return None

    def keep_cache(self, cache):
        if self.cache_init == 'carry' and cache is not None:
            self.carried_cache = cache.detach()


class QKCU(nn.Module):
    """Query-Key Cache Updating for ``dim`` channels in heads of ``head_ratios``; HMHA holds one.

    ``cache_momentum``: the share of its past the inter-layer cache keeps (0.9); ``variant``: ``'official'`` or
    ``'refined'`` (:class:`VariantRule`); ``cache_rounding``: official's ``//``; ``fast``: ``ops.channel_mix``.
    ``forward(maps, values, qk, cache=None, order=None) -> (out, cache)``: the heads' softmax maps and values
    ``(B, N, c_i)``, the ``(B, N, C)`` intra-layer cache, the incoming ``(1 or B, C', C')`` cache or ``None``,
    and the ``(1 or B, C)`` channel order the heads were taken in.
    """

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
        """The inter-layer cache: ``heads`` ``(B, N, C)``, ``v_i A_i^T`` side by side, each map first modulated by
        the incoming cache pooled to ``(C, C)`` (where there is one), and the cache passed on."""
        channels = sum(self.head_channels)
        if cache is not None:
            cache = F.adaptive_avg_pool2d(cache, channels) if cache.shape[-1] != channels else cache
            maps = [getattr(self, f'inter_modulator{i}')(attn, cache) for i, attn in enumerate(maps, start=1)]
        heads = torch.cat([v @ attn.transpose(1, 2) for attn, v in zip(maps, values)], dim=-1)
        update = cache_update(maps, self.head_channels, self.rule, self.cache_rounding)
        if cache is not None:
            return heads, cache * self.cache_momentum + update * (1 - self.cache_momentum)
        return heads, update * self.cache_momentum if self.rule.damp_first_update else update

    def gate(self, heads, qk, order=None):
        """The intra-layer cache: ``heads + intra_modulator(heads, qk)``, the channel ``order`` undone first where
        the variant says so (official: the heads stay in sorted order)."""
        if order is not None and self.rule.restore_order:
            inverse = torch.argsort(order, dim=1)
            heads, qk = gather_channels(heads, inverse), gather_channels(qk, inverse)
        return heads + self.intra_modulator(heads, qk)

    def forward(self, maps, values, qk, cache=None, order=None):
        heads, cache = self.attend(maps, values, cache)
        return self.gate(heads, qk, order), cache


def gather_channels(tokens, order):
    """``tokens[b, n, order[b, i]]``: the channels of ``(B, N, C)`` tokens taken in ``order`` ``(1 or B, C)``."""
    return torch.gather(tokens, -1, order.unsqueeze(1).expand(tokens.shape[0], tokens.shape[1], -1))
