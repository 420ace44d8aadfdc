"""QKCU: Query-Key Cache Updating, the two caches that let HINT's attention heads share what they learnt.

* Intra-layer cache: the L2-normalised query plus key features ``T = q + k`` (detached) gate the attention
  output: ``out = out + up(down(gelu(gate(out + T)) * (out + T)))``.
* Inter-layer cache: a ``(C, C)`` map carried from attention block to attention block. Each head's attention
  map ``A_i`` is modulated by it, and the block passes on ``momentum * cache + (1 - momentum) * U`` where
  ``U`` sums the heads' maps resized to ``(C, C)``, each weighed by ``C_i / C``. The official rule computes
  that weighing as the authors' code did, ``resize(A_i) * C_i // C``: on their torch 1.12 tensor ``//``
  truncated toward zero (``cache_rounding='trunc'``, the released checkpoints), from torch 1.13 on it floors
  (``'floor'``). Where the first attention block of a call starts from is ``cache_init`` (see
  :data:`CACHE_INITS`).

The two variants differ only in the :class:`VariantRule` below; nothing else in the package branches on the
variant name.
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs.ops import channel_mix, permute_channels
from hint_plugin.errors import OptionsError

DEFAULT_HEAD_RATIOS = (1, 2, 2, 3)
DEFAULT_CACHE_MOMENTUM = 0.9
CACHE_ROUNDINGS = ('trunc', 'floor')
# What the first attention block of a call starts from: 'carry' the previous call's final cache (the authors'
# code keeps it on the module; the first call and a reset start from none), 'zeros' an all-zero cache
# (stateless), 'none' no cache (its inter-layer modulators are skipped).
CACHE_INITS = ('carry', 'zeros', 'none')
DEFAULT_CACHE_INIT = 'zeros'  # stateless, and every parameter trains; measured against the others in docs/variants.md


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
    """The :class:`VariantRule` called ``name``; a clear ``OptionsError`` (a ValueError) for an unknown one."""
    if name not in VARIANTS:
        raise OptionsError(f'variant must be one of {sorted(VARIANTS)}, got {name!r}')
    return VARIANTS[name]


def resolve_cache_rounding(variant, cache_rounding=None):
    """The official cache update's rounding (default ``'trunc'``), or None for ``refined``, which divides exactly
    (there giving one is an error rather than an ignored option)."""
    rule = get_variant(variant)
    if cache_rounding is not None and cache_rounding not in CACHE_ROUNDINGS:
        raise OptionsError(f'cache_rounding must be one of {CACHE_ROUNDINGS}, got {cache_rounding!r}')
    if rule.true_division:
        if cache_rounding is not None:
            raise OptionsError(f'cache_rounding only applies to the official variant; variant {variant!r} divides '
                               'exactly (leave cache_rounding unset)')
        return None
    return cache_rounding or 'trunc'


def resolve_cache_init(variant, cache_init=None):
    """What a call's first attention block starts from (default :data:`DEFAULT_CACHE_INIT`); ``carry`` is refused
    where statistics are per image, whose images must stay independent of each other."""
    cache_init = DEFAULT_CACHE_INIT if cache_init is None else cache_init
    if cache_init not in CACHE_INITS:
        raise OptionsError(f'cache_init must be one of {CACHE_INITS}, got {cache_init!r}')
    if cache_init == 'carry' and get_variant(variant).per_image:
        raise OptionsError(f'cache_init: carry is not available for variant {variant!r}: a cache carried from the '
                           'previous call would make an image\'s output depend on what was restored before it')
    return cache_init


def head_sizes(channels, ratios=DEFAULT_HEAD_RATIOS):
    """Split ``channels`` into heads of sizes ``r * channels / sum(ratios)``; they must be exact and non-zero."""
    total = sum(ratios)
    sizes = [r * channels // total for r in ratios]
    if any(r <= 0 for r in ratios) or sum(sizes) != channels or min(sizes) == 0:
        raise OptionsError(f'{channels} channels cannot be split into heads with ratios {tuple(ratios)}: '
                            f'the channel count must be a positive multiple of {total}')
    return sizes


def batch_statistic(x, rule):
    """``x`` itself when statistics are per image, else its batch mean ``(1, ...)``."""
    return x if rule.per_image else x.mean(dim=0, keepdim=True)


class IntraCacheModulation(nn.Module):
    """Intra-layer cache gate over tokens ``(B, N, C)``: ``up(down(gelu(gatingConv(s)) * s))``, ``s = out + qk``.

    (In training, HMHA recomputes it in the backward pass instead of keeping its intermediate tensors.)"""

    def __init__(self, channels):
        super().__init__()
        self.down = nn.Conv1d(channels, channels // 2, kernel_size=1)
        self.up = nn.Conv1d(channels // 2, channels, kernel_size=1)
        self.gatingConv = nn.Conv1d(channels, channels, kernel_size=1)

    def _modulation(self, s):
        gated = F.gelu(channel_mix(self.gatingConv, s, -1)) * s
        return channel_mix(self.up, channel_mix(self.down, gated, -1), -1)

    def forward(self, out, qk_cache):
        return self._modulation(out + qk_cache)


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


class CarriesCache:
    """Mixin for a module whose call threads an inter-layer cache: where its first attention block starts.

    ``cache_init`` (:data:`CACHE_INITS`): ``'none'`` starts without a cache, ``'zeros'`` from an all-zero
    ``(1, C, C)`` cache, ``'carry'`` from the final cache of the module's previous call (detached; the first
    call and the first after :meth:`reset_cache` start from none), as the authors' HINT keeps it on the module.
    The carried cache is plain per-process state: not in the state dict, not synchronised by DDP.
    """
    cache_init = 'none'
    carried_cache = None

    def reset_cache(self):
        """Forget the carried cache: the next call starts from none, as a freshly built module does."""
        self.carried_cache = None

    def start_cache(self, like, channels):
        """The cache the first attention block gets, in ``like``'s dtype and device, or ``None``."""
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
        """Remember the call's final cache when carrying it (detached: no graph crosses calls)."""
        if self.cache_init == 'carry' and cache is not None:
            self.carried_cache = cache.detach()


class QKCU(nn.Module):
    """Query-Key Cache Updating for attention with per-head ``(c_i, c_i)`` maps over ``C`` channels.

    Args:
        dim (int): C, the channel count of the attention.
        head_ratios (sequence of int): relative head sizes (HINT: 1:2:2:3).
        cache_momentum (float): the inter-layer cache keeps ``momentum`` of its past (0.9).
        variant (str): ``'official'`` (the released checkpoints) or ``'refined'``; see :class:`VariantRule`.
        cache_rounding (str or None): the official cache update's rounding, ``'trunc'`` (default: torch 1.12,
            the released checkpoints) or ``'floor'`` (the authors' code on torch >= 1.13); unset for refined.

    ``forward(maps, values, qk_cache, cache=None, order=None) -> (out, new_cache)``, on tokens (channels last):
        maps: list of ``(B, c_i, c_i)`` softmax attention maps; values: list of ``(B, N, c_i)``;
        qk_cache: ``(B, N, C)`` normalised query + key features; cache: ``(1 or B, C', C')`` from the previous
        attention block or ``None`` for the first one; order: ``(1 or B, C)`` channel permutation the heads
        were taken in (undone before the gate when the variant says so).
        out: ``(B, N, C)``, head ``i`` being ``v_i A_i^T``; new_cache: ``(1 or B, C, C)``, detached.
    """

    def __init__(self, dim, head_ratios=DEFAULT_HEAD_RATIOS, cache_momentum=DEFAULT_CACHE_MOMENTUM,
                 variant='official', cache_rounding=None):
        super().__init__()
        self._init_cache_modulators(dim, head_ratios, cache_momentum, variant, cache_rounding)

    def _init_cache_modulators(self, dim, head_ratios, cache_momentum, variant, cache_rounding):
        """Create ``intra_modulator`` and ``inter_modulator1..n`` (the checkpoint's names) on ``self``."""
        if not 0.0 <= cache_momentum <= 1.0:
            raise OptionsError(f'cache_momentum must be in [0, 1], got {cache_momentum}')
        self.rule = get_variant(variant)
        self.cache_rounding = resolve_cache_rounding(variant, cache_rounding)
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
            if self.rule.true_division:
                term = resized * (c_i / channels)
            else:  # the authors' `resized * c_i // channels`, rounded as their torch did
                term = torch.div(resized * c_i, channels, rounding_mode=self.cache_rounding)
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

    def attend(self, maps, values, cache=None):
        """The heads' outputs ``(B, N, C)`` (``v_i A_i^T`` side by side, maps modulated by the cache) and the
        cache for the next attention block; ``cache`` is the incoming one (any width) or ``None``."""
        cache = self.align_cache(cache)
        maps = self.modulate_maps(maps, cache)
        out = torch.cat([v @ attn.transpose(1, 2) for attn, v in zip(maps, values)], dim=-1)
        return out, self.update_cache(maps, cache)

    def gate_output(self, out, qk_cache, order=None):
        """``out + intra_modulator(out, qk_cache)`` on ``(B, N, C)`` tokens, after undoing the channel ``order``
        where the variant says so."""
        if order is not None and self.rule.restore_order:
            inverse = torch.argsort(order, dim=1)
            out, qk_cache = permute_channels(out, inverse), permute_channels(qk_cache, inverse)
        return out + self.intra_modulator(out, qk_cache)

    def forward(self, maps, values, qk_cache, cache=None, order=None):
        out, cache = self.attend(maps, values, cache)
        return self.gate_output(out, qk_cache, order), cache
