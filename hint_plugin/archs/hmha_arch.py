"""HMHA: Hierarchical Multi-Head Attention, channel attention over heads of unequal sizes.

Channels are re-ordered by how strongly each one correlates with the others, then split into heads of
sizes in the ratios 1:2:2:3; each head runs transposed (channel-to-channel) attention. The attention maps
and the output go through QKCU (:mod:`hint_plugin.archs.qkcu_arch`).
"""
import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs.ops import (RecomputesStretches, head_products, in_float32, normalize_tokens,
                                  permute_channels, pointwise_convs_of_recomputed)
from hint_plugin.archs.qkcu_arch import (DEFAULT_CACHE_MOMENTUM, DEFAULT_HEAD_RATIOS, QKCU, CarriesCache,
                                         batch_statistic, resolve_cache_init)


@in_float32
def channel_correlation(tokens):
    """Pearson correlation between the channels of ``tokens`` ``(B, N, C)`` over their N tokens: ``(B, C, C)``.

    ``torch.corrcoef``'s definition (the covariance ``(x - mean)^T (x - mean) / (N - 1)`` divided by the
    standard deviations of rows and columns, clipped to [-1, 1]) as one batched product. Unlike
    ``torch.corrcoef``, whose degrees-of-freedom check is data-dependent, it traces whole (torch.compile,
    torch.export, mmengine) and needs no loop over the batch. One token gives NaN (0 / 0), as corrcoef does.
    Computed in at least float32 whatever the dtype of ``tokens`` (:func:`in_float32`).
    """
    count = tokens.shape[1]
    centred = tokens - tokens.sum(dim=1, keepdim=True) / count
    covariance = centred.transpose(1, 2) @ centred / (count - 1)
    deviation = torch.diagonal(covariance, dim1=1, dim2=2).sqrt()
    return (covariance / deviation[:, :, None] / deviation[:, None, :]).clamp(-1, 1)


@in_float32
def mean_channel_correlation(tokens):
    """``channel_correlation(tokens).mean(dim=2)``, each channel's mean correlation with all: ``(B, N, C) -> (B, C)``.

    Without the ``(C, C)`` matrix: with ``x`` the centred tokens and ``s`` their standard deviations, row ``i``
    of the correlation matrix sums to ``(x^T (x s^-1))_i / ((N - 1) s_i)``, two matrix-vector products
    (``O(N C)``) instead of a matrix product (``O(N C^2)``): 0.62 against 2.11 ms for 16384 tokens of 96
    channels, 0.26 against 1.77 ms for 4096 of 192 (2 threads, ``tools/speed_devices.py``). The only difference is the clipping of each correlation to [-1, 1],
    which there changes values at rounding level only. A constant channel gives NaN, as in the matrix (its order
    among the channels is then arbitrary, as the reference's).
    """
    count = tokens.shape[1]
    centred = tokens - tokens.sum(dim=1, keepdim=True) / count
    deviation = (centred.square().sum(dim=1, keepdim=True) / (count - 1)).sqrt()  # (B, 1, C)
    standardized_sum = centred @ deviation.reciprocal().transpose(1, 2)  # (B, N, 1): sum_j x_nj / s_j
    row_sums = (centred.transpose(1, 2) @ standardized_sum).squeeze(2) / (count - 1)  # (B, C)
    return row_sums / deviation.squeeze(1) / tokens.shape[2]


def channel_order(tokens, rule):
    """Channels sorted by their mean Pearson correlation with all channels, most correlated first.

    ``tokens``: ``(B, N, C)``. Returns ``(1, C)`` from the batch-mean features, or ``(B, C)`` per image when
    the variant's statistics are per image.
    """
    with torch.no_grad():
        similarity = mean_channel_correlation(batch_statistic(tokens, rule))
        return torch.sort(similarity, dim=1, descending=True).indices


def _first_outputs(conv, count):
    """``(weight, bias)`` of the first ``count`` output channels of ``conv``."""
    return conv.weight[:count], None if conv.bias is None else conv.bias[:count]


class HMHA(CarriesCache, RecomputesStretches, QKCU):
    """Hierarchical Multi-Head Attention with Query-Key Cache Updating: ``(B, C, H, W) -> (B, C, H, W)``.

    It extends :class:`QKCU` rather than holding one so that the cache layers keep the flat names of the
    released checkpoints (``attn.intra_modulator``, ``attn.inter_modulator1`` ...).

    Args:
        dim (int): C; must split exactly by ``head_ratios`` (a multiple of 8 for 1:2:2:3).
        bias (bool): bias in the qkv and output convolutions.
        head_ratios (sequence of int): relative head sizes.
        cache_momentum (float): inter-layer cache momentum.
        variant (str): ``'official'`` or ``'refined'``.
        cache_rounding (str or None): the official cache update's rounding, ``'trunc'`` or ``'floor'``.
        cache_init (str or None): what a call without a ``cache`` starts from, ``'carry'``, ``'zeros'`` or
            ``'none'`` (:class:`CarriesCache`); unset: the variant's default. Inside HINT it is ``'none'``: the
            network decides what its first attention block gets.

    ``forward(x, cache=None, norm=None) -> (out, cache)``: ``x`` ``(B, C, H, W)``; ``cache`` is the inter-layer
    cache, ``(1 or B, C', C')`` or ``None`` in the first attention block; the returned one is ``(1 or B, C, C)``;
    ``norm`` (the block's LayerNorm) is applied to ``x`` first.

    While training on maps of at least ``recompute_min_tokens`` tokens, the two cheap stretches before the 1x1
    convolutions, the norm before ``qkv`` and the intra-layer cache gate before ``project_out``, are recomputed in
    the backward pass instead of kept (:func:`~hint_plugin.archs.ops.pointwise_convs_of_recomputed`).
    """

    def __init__(self, dim, bias=False, head_ratios=DEFAULT_HEAD_RATIOS, cache_momentum=DEFAULT_CACHE_MOMENTUM,
                 variant='official', cache_rounding=None, cache_init=None):
        nn.Module.__init__(self)
        self.temperature = nn.Parameter(torch.ones(len(head_ratios), 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)
        self._init_cache_modulators(dim, head_ratios, cache_momentum, variant, cache_rounding)
        self.cache_init = resolve_cache_init(variant, cache_init)

    def sorts_by_weights(self, batch):
        """Whether q, k and v come out of the convolutions already in channel order (:meth:`_query_order`):
        wherever the batch shares one order (not for per-image orders of several images), except under
        ``torch.jit`` tracing (complexity counts see the network's own operations)."""
        return not (self.rule.per_image and batch > 1) and not torch.jit.is_tracing()

    def _query_order(self, x, norm):
        """The channel order ``(1, C)`` of the queries of ``x`` ``(B, C, H, W)``, from q's own convolutions, without
        gradients (the queries with gradients are computed again, already in that order)."""
        c = x.shape[1]
        with torch.no_grad():
            q = F.conv2d(x if norm is None else norm(x), *_first_outputs(self.qkv, c))
            q = F.conv2d(q, *_first_outputs(self.qkv_dwconv, c), padding=self.qkv_dwconv.padding, groups=c)
            return channel_order(q.permute(0, 2, 3, 1).reshape(x.shape[0], -1, c), self.rule)

    def forward(self, x, cache=None, norm=None):
        b, c, h, w = x.shape
        if cache is None:
            cache = self.start_cache(x, c)
        by_weights = self.sorts_by_weights(b)
        qkv_conv = (self.qkv.weight, self.qkv.bias)
        dw_conv = (self.qkv_dwconv.weight, self.qkv_dwconv.bias)
        if by_weights:
            # the output channels of both convolutions re-ordered instead of the (N, 3C) tokens they give
            order = self._query_order(x, norm)
            index = torch.cat([order, order + c, order + 2 * c], dim=1)[0]
            qkv_conv, dw_conv = ((weight.index_select(0, index), None if bias is None else bias.index_select(0, index))
                                 for weight, bias in (qkv_conv, dw_conv))
        recompute = self.recomputes(x)
        if recompute and norm is not None:
            qkv, = pointwise_convs_of_recomputed(norm, (x, ), list(norm.parameters()), [qkv_conv])
        else:
            qkv = F.conv2d(x if norm is None else norm(x), *qkv_conv)
        # tokens (B, N, 3C): a free view when qkv is channels-last, which the whole attention then keeps
        tokens = F.conv2d(qkv, *dw_conv, padding=self.qkv_dwconv.padding, groups=3 * c)
        tokens = tokens.permute(0, 2, 3, 1).reshape(b, h * w, 3 * c)
        if not by_weights:
            order = channel_order(tokens[..., :c], self.rule)
            # one gather re-orders q, k and v alike: on CPU several times faster than three gathers of strided thirds
            tokens = permute_channels(tokens, torch.cat([order, order + c, order + 2 * c], dim=1))
        # one split, whose backward pass is one concatenation (two slices would each zero-fill a 3C gradient)
        qk, v = tokens.split([2 * c, c], dim=-1)
        qk = normalize_tokens(qk)  # per channel, so q and k together
        q, k = qk.detach().split(c, dim=-1)  # for the intra-layer cache, which takes no gradient
        # v copied out so that the re-ordered tokens are not held for the backward pass through it
        v = v.contiguous()
        softmax_dtype = torch.promote_types(q.dtype, torch.float32)  # CPU autocast would keep a half dtype
        maps = [  # the softmax in at least float32, its maps in q's dtype
            (product * self.temperature[i]).softmax(dim=-1, dtype=softmax_dtype).to(q.dtype)
            for i, product in enumerate(head_products(qk, self.head_channels))
        ]
        heads, cache = self.attend(maps, v.split(self.head_channels, -1), cache)
        self.keep_cache(cache)

        def gated(heads, q, k):  # (B, N, C) tokens -> (B, C, H, W), channels-last
            # the intra-layer cache is q + k detached (above), as the authors' (no gradient flows through the cache)
            return self.gate_output(heads, q + k, order).view(b, h, w, c).permute(0, 3, 1, 2)

        out_conv = [(self.project_out.weight, self.project_out.bias)]
        if recompute:
            out, = pointwise_convs_of_recomputed(gated, (heads, q, k), list(self.intra_modulator.parameters()),
                                                 out_conv)
        else:
            out = F.conv2d(gated(heads, q, k), *out_conv[0])
        return out, cache
