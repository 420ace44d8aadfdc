"""HMHA, Hierarchical Multi-Head Attention (the HINT paper's HMHA section), holding a QKCU. Plain path for ``x``
``(B, C, H, W)``, ``N = H * W`` tokens: ``q | k | v = qkv_dwconv(qkv(norm(x)))`` ``(B, N, 3C)``; channels sorted by
their mean correlation (:func:`channel_order`); heads split 1:2:2:3 (``head_sizes``); per head, transposed
attention ``A_i = softmax(t_i q_i^T k_i)`` ``(B, c_i, c_i)``, q and k L2-normalised over the tokens; QKCU (heads'
outputs ``v_i A_i^T`` with the inter-layer cache, then the intra-layer gate); ``project_out``.
"""
import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs import ops
from hint_plugin.archs.ops import in_float32, normalize_tokens  # noqa: F401  (the precision study uses both)
from hint_plugin.archs.qkcu_arch import (DEFAULT_CACHE_MOMENTUM, DEFAULT_HEAD_RATIOS, QKCU, CarriesCache,
                                         batch_statistic, gather_channels, head_sizes, resolve_cache_init)


@in_float32
def channel_correlation(tokens):
    """``torch.corrcoef`` of the channels of each image's tokens ``(B, N, C)``: ``(B, C, C)``, batched."""
    count = tokens.shape[1]
    centred = tokens - tokens.sum(dim=1, keepdim=True) / count
    covariance = centred.transpose(1, 2) @ centred / (count - 1)
    deviation = torch.diagonal(covariance, dim1=1, dim2=2).sqrt()
    return (covariance / deviation[:, :, None] / deviation[:, None, :]).clamp(-1, 1)


@in_float32
def mean_channel_correlation(tokens):
    """fast: ``channel_correlation(tokens).mean(dim=2)`` by two matrix-vector products: row ``i`` sums to
    ``(x^T (x s^-1))_i / ((N - 1) s_i)``, ``x`` centred, ``s`` the deviations (unclipped: rounding-level)."""
    count = tokens.shape[1]
    centred = tokens - tokens.sum(dim=1, keepdim=True) / count
    deviation = (centred.square().sum(dim=1, keepdim=True) / (count - 1)).sqrt()  # (B, 1, C)
    standardized_sum = centred @ deviation.reciprocal().transpose(1, 2)  # (B, N, 1)
    row_sums = (centred.transpose(1, 2) @ standardized_sum).squeeze(2) / (count - 1)
    return row_sums / deviation.squeeze(1) / tokens.shape[2]


def channel_order(tokens, rule, fast=False):
    """``(B, N, C)`` tokens' channels sorted by mean correlation with all, highest first: ``(B, C)``; official:
    ``(1, C)`` from the batch-mean tokens."""
    with torch.no_grad():
        statistic = batch_statistic(tokens, rule)
        similarity = mean_channel_correlation(statistic) if fast else channel_correlation(statistic).mean(dim=2)
        return torch.sort(similarity, dim=1, descending=True).indices


def head_products(q, k, head_channels):
    """Each head's ``q_i^T k_i`` ``(B, c_i, c_i)`` from q and k ``(B, N, C)``."""
    return [q_i.transpose(1, 2) @ k_i for q_i, k_i in zip(q.split(head_channels, -1), k.split(head_channels, -1))]


def attention_maps(products, temperature, dtype):
    """``A_i = softmax(t_i P_i)`` over the last axis, computed in at least float32, returned in ``dtype``."""
    softmax_dtype = torch.promote_types(dtype, torch.float32)
    return [(p * temperature[i]).softmax(dim=-1, dtype=softmax_dtype).to(dtype) for i, p in enumerate(products)]


class HMHA(CarriesCache, nn.Module):
    """HMHA with QKCU: ``forward(x, cache=None, norm=None) -> (out, cache)``, ``x`` and ``out`` ``(B, C, H, W)``,
    the incoming cache ``(1 or B, C', C')`` or ``None``, the returned ``(1 or B, C, C)``; ``norm`` (the block's
    LayerNorm) is applied to ``x``. ``cache_init``: where a call without ``cache`` starts (inside HINT:
    ``'none'``); ``fast``, ``recompute_min_tokens``: as HINT's. The QKCU's layers are registered under HMHA's
    names (``intra_modulator``, ``inter_modulator1`` ...: the released checkpoints' keys)."""

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
        object.__setattr__(self, 'qkcu', qkcu)  # held, not registered: its layers are registered just above
        self.rule = qkcu.rule
        self.cache_init = resolve_cache_init(variant, cache_init)
        self.fast, self.recompute_min_tokens = fast, recompute_min_tokens

    def forward(self, x, cache=None, norm=None):
        b, c, h, w = x.shape
        if cache is None:
            cache = self.start_cache(x, c)
        fast = ops.restructures(self.fast)
        recompute = fast and ops.recomputes(x, self.recompute_min_tokens)
        if fast and not (self.rule.per_image and b > 1):  # fast: one order for the batch, taken by the weights
            order = self._query_order(x, norm)
            tokens = self._fast_qkv(x, norm, order, recompute)
        else:
            if fast:
                tokens = self._fast_qkv(x, norm, None, recompute)
            else:
                qkv = self.qkv_dwconv(self.qkv(x if norm is None else norm(x)))
                tokens = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3 * c)
            order = channel_order(tokens[..., :c], self.rule, self.fast)
            tokens = gather_channels(tokens, torch.cat([order, order + c, order + 2 * c], dim=1))
        qk, v = tokens.split([2 * c, c], dim=-1)
        # q and k normalised over the tokens, channel by channel (fast: a hand-written backward pass)
        qk = normalize_tokens(qk) if self.fast else F.normalize(ops.at_least_float32(qk), dim=1).to(qk.dtype)
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

        q, k = q.detach(), k.detach()
        if not fast:
            return self.project_out(gated(heads, q, k)), cache
        out_conv = [(self.project_out.weight, self.project_out.bias)]
        if recompute:  # fast: the gate recomputed in the backward pass instead of kept
            return ops.convs_of_recomputed(gated, (heads, q, k), list(self.intra_modulator.parameters()),
                                           out_conv)[0], cache
        return F.conv2d(gated(heads, q, k), *out_conv[0]), cache

    def _query_order(self, x, norm):
        """fast: the channel order ``(1, C)`` from a gradient-free pass of q's own convolutions."""
        c = x.shape[1]
        with torch.no_grad():
            q = F.conv2d(x if norm is None else norm(x), self.qkv.weight[:c], _first(self.qkv.bias, c))
            q = F.conv2d(q, self.qkv_dwconv.weight[:c], _first(self.qkv_dwconv.bias, c), padding=1, groups=c)
            return channel_order(q.permute(0, 2, 3, 1).reshape(x.shape[0], -1, c), self.rule, True)

    def _fast_qkv(self, x, norm, order, recompute):
        """fast: the q | k | v tokens ``(B, N, 3C)``, the weights' output channels taken in ``order`` (where given)."""
        b, c = x.shape[:2]
        convs = [(self.qkv.weight, self.qkv.bias), (self.qkv_dwconv.weight, self.qkv_dwconv.bias)]
        if order is not None:
            index = torch.cat([order, order + c, order + 2 * c], dim=1)[0]
            convs = [(weight.index_select(0, index), None if bias is None else bias.index_select(0, index))
                     for weight, bias in convs]
        if recompute and norm is not None:
            qkv, = ops.convs_of_recomputed(norm, (x, ), list(norm.parameters()), convs[:1])
        else:
            qkv = F.conv2d(x if norm is None else norm(x), *convs[0])
        tokens = F.conv2d(qkv, *convs[1], padding=1, groups=3 * c)
        return tokens.permute(0, 2, 3, 1).reshape(b, -1, 3 * c)  # a free view in channels-last memory


def _first(bias, count):
    return None if bias is None else bias[:count]
