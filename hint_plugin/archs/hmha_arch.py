"""HMHA, Hierarchical Multi-Head Attention (the paper's HMHA section), holding a QKCU. Plain path, ``x`` ``(B, C,
H, W)``, ``N = H * W``: tokens ``q | k | v = qkv_dwconv(qkv(norm(x)))`` ``(B, N, 3C)``; channels sorted by mean
correlation (:func:`channel_order`); heads 1:2:2:3 (``head_sizes``); q and k L2-normalised over the tokens; per
head ``A_i = softmax(t_i q_i^T k_i)`` ``(B, c_i, c_i)``; QKCU; ``project_out``."""
import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs import ops
from hint_plugin.archs.layers import NO_NORM
from hint_plugin.archs.qkcu_arch import (DEFAULT_CACHE_MOMENTUM, DEFAULT_HEAD_RATIOS, QKCU, CarriesCache,
                                         batch_statistic, gather_channels, head_sizes, resolve_cache_init)


@ops.in_float32
def channel_correlation(tokens):
    """``torch.corrcoef`` of each image's channels, batched: tokens ``(B, N, C)`` -> ``(B, C, C)``."""
    count = tokens.shape[1]
    centred = tokens - tokens.sum(dim=1, keepdim=True) / count
    covariance = centred.transpose(1, 2) @ centred / (count - 1)
    deviation = torch.diagonal(covariance, dim1=1, dim2=2).sqrt()
    return (covariance / deviation[:, :, None] / deviation[:, None, :]).clamp(-1, 1)


@ops.in_float32
def mean_channel_correlation(tokens):
    """fast: ``channel_correlation(tokens).mean(dim=2)`` by two matrix-vector products: row ``i`` sums to
    ``(x^T (x s^-1))_i / ((N - 1) s_i)``, ``x`` centred, ``s`` the deviations."""
    count = tokens.shape[1]
    centred = tokens - tokens.sum(dim=1, keepdim=True) / count
    deviation = (centred.square().sum(dim=1, keepdim=True) / (count - 1)).sqrt()  # (B, 1, C)
    standardized_sum = centred @ deviation.reciprocal().transpose(1, 2)  # (B, N, 1)
    row_sums = (centred.transpose(1, 2) @ standardized_sum).squeeze(2) / (count - 1)
    return row_sums / deviation.squeeze(1) / tokens.shape[2]


def channel_order(tokens, rule, fast=False):
    """The re-ordering (the authors' ``ReGroup``): tokens' ``(B, N, C)`` channels by mean correlation, highest
    first: ``(B, C)``; official: ``(1, C)``, of the batch-mean tokens."""
    with torch.no_grad():
        statistic = batch_statistic(tokens, rule)
        similarity = mean_channel_correlation(statistic) if fast else channel_correlation(statistic).mean(dim=2)
        return torch.sort(similarity, dim=1, descending=True).indices


def head_products(q, k, head_channels):
    """Each head's ``q_i^T k_i`` ``(B, c_i, c_i)`` from q and k ``(B, N, C)``."""
    return [q_i.transpose(1, 2) @ k_i for q_i, k_i in zip(q.split(head_channels, -1), k.split(head_channels, -1))]


def attention_maps(products, temperature, dtype):
    """``A_i = softmax(t_i P_i)`` over the last axis, in at least float32, returned in ``dtype``."""
    softmax_dtype = torch.promote_types(dtype, torch.float32)
    return [(p * temperature[i]).softmax(dim=-1, dtype=softmax_dtype).to(dtype) for i, p in enumerate(products)]


class HMHA(CarriesCache, nn.Module):
    """``forward(x, cache=None, norm=NO_NORM) -> (out, cache)``: ``x``, ``out`` ``(B, C, H, W)``; cache ``(1 or B, C',
    C')`` or ``None`` in, ``(1 or B, C, C)`` out; ``norm``: the block's LayerNorm."""

    def __init__(self, dim, bias=False, head_ratios=DEFAULT_HEAD_RATIOS, cache_momentum=DEFAULT_CACHE_MOMENTUM,
                 variant='official', cache_rounding=None, cache_init=None, fast=True, recompute_min_tokens=None):
        super().__init__()
        self.head_channels = head_sizes(dim, head_ratios)
        self.temperature = nn.Parameter(torch.ones(len(head_ratios), 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)
        qkcu = QKCU(dim, head_ratios, cache_momentum, variant, cache_rounding, fast)
        for name, layer in qkcu.named_children():
            self.add_module(name, layer)
        object.__setattr__(self, 'qkcu', qkcu)  # held; its layers are HMHA's (the checkpoints' keys)
        self.rule = qkcu.rule
        self.cache_init = resolve_cache_init(variant, cache_init)
        self.fast, self.recompute_min_tokens = fast, recompute_min_tokens

    def forward(self, x, cache=None, norm=NO_NORM):
        b, c, h, w = x.shape
        cache = self.start_cache(x, c) if cache is None else cache
        fast = ops.restructures(self.fast)
        recompute = fast and ops.recomputes(x, self.recompute_min_tokens)
        if fast:
            tokens, order = self._fast_qkv(x, norm, recompute)
        else:
            tokens, order = self.qkv_dwconv(self.qkv(norm(x))).permute(0, 2, 3, 1).reshape(b, h * w, 3 * c), None
        if order is None:  # q, k and v sorted alike
            order = channel_order(tokens[..., :c], self.rule, self.fast)
            tokens = gather_channels(tokens, torch.cat([order, order + c, order + 2 * c], dim=1))
        qk, v = tokens.split([2 * c, c], dim=-1)
        # q and k L2-normalised over the tokens (fast: a hand-written backward pass)
        qk = ops.normalize_tokens(qk) if self.fast else F.normalize(ops.at_least_float32(qk), dim=1).to(qk.dtype)
        q, k = qk.chunk(2, dim=-1)
        if fast and torch.is_grad_enabled() and qk.requires_grad:  # fast: q | k's gradient in one piece
            products, v = ops.head_products(qk, self.head_channels), v.contiguous()
        else:
            products = head_products(q, k, self.head_channels)
        maps = attention_maps(products, self.temperature, q.dtype)
        heads, cache = self.qkcu.attend(maps, v.split(self.head_channels, dim=-1), cache)
        self.keep_cache(cache)

        def gated(heads, q, k):  # intra-layer cache q + k (no gradient, as the authors'); tokens -> (B, C, H, W)
            return self.qkcu.gate(heads, q + k, order).reshape(b, h, w, c).permute(0, 3, 1, 2)

        if recompute:  # fast: the gate recomputed in the backward pass instead of kept
            return ops.convs_of_recomputed(gated, (heads, q.detach(), k.detach()), list(
                self.intra_modulator.parameters()), [(self.project_out.weight, self.project_out.bias)])[0], cache
        return self.project_out(gated(heads, q.detach(), k.detach())), cache

    def _fast_qkv(self, x, norm, recompute):
        """fast: tokens ``q | k | v`` and, if the batch shares one order, that order ``(1, C)`` (from a gradient-free
        pass of q's convolutions) taken by the weights; else ``None``."""
        b, c = x.shape[:2]
        convs = [(conv.weight, conv.bias) for conv in (self.qkv, self.qkv_dwconv)]
        order, normalized = None, None if recompute else norm(x)
        if not (self.rule.per_image and b > 1):
            with torch.no_grad():
                q = F.conv2d(norm(x) if recompute else normalized, *(t if t is None else t[:c] for t in convs[0]))
                q = F.conv2d(q, *(t if t is None else t[:c] for t in convs[1]), padding=1, groups=c)
                order = channel_order(q.permute(0, 2, 3, 1).reshape(b, -1, c), self.rule, True)
            index = torch.cat([order, order + c, order + 2 * c], dim=1)[0]
            convs = [[t if t is None else t.index_select(0, index) for t in conv] for conv in convs]
        if recompute:
            qkv, = ops.convs_of_recomputed(norm, (x, ), list(norm.parameters()), convs[:1])
        else:
            qkv, normalized = F.conv2d(normalized, *convs[0]), None
        tokens = F.conv2d(qkv, *convs[1], padding=1, groups=3 * c)
        return tokens.permute(0, 2, 3, 1).reshape(b, -1, 3 * c), order  # free in channels-last memory
