"""Speed devices of HINT's architecture: each computes what a plain PyTorch expression computes (to rounding),
faster or in less memory, and is tested against that expression, forward and backward (tests/archs/test_ops.py).
(``hmha_arch.mean_channel_correlation`` is one more, tested in tests/archs/test_hint_arch.py.)

Measured on the project's 2-core CPU machine (AMD EPYC, fp32, default configuration, ``tools/benchmark.py`` and
in-process A/B runs; docs/benchmarks.md has the current tables):

* :func:`pointwise_convs_of_recomputed` / :class:`RecomputesStretches`: the cheap, memory-hungry stretches
  before each 1x1 convolution (the LayerNorms, the FFN's depthwise gate, the intra-layer cache gate) are
  recomputed in the backward pass, the convolutions are not: a 128x128 training step peaked at 2.78 GB against
  3.44 GB when checkpoints recomputed only the gates (``tools/benchmark.py --mode train --revision dbddc77``;
  time within the run-to-run noise, docs/benchmarks.md), recomputing at every level; on maps under
  ``RecomputesStretches.recompute_min_tokens`` tokens it is now left out (3.24 GB, faster). Plain expression:
  ``[F.conv2d(stretch(*inputs), w, b) for w, b in convs]``.
* :func:`channel_mix`: a kernel-1 ``nn.Conv1d`` (the cache layers, stored as Conv1d for the released
  checkpoints) over tokens as oneDNN's 1x1 ``conv2d`` of a channels-last view: forward and backward 4.2 ms
  against 11.4 ms for ``F.linear`` and 12.0 ms for Conv1d (16384 x 96 tokens, 2 threads,
  ``tools/speed_devices.py``). Plain expression, for ``(B, N, C)``
  tokens: ``conv(x.transpose(1, 2)).transpose(1, 2)``; for the small ``(B, c, c)`` maps (one matrix product,
  with no measured gain claimed): ``conv(x)``.
* :func:`permute_channels`: one gather re-orders q, k and v together (6x faster than three gathers of
  strided thirds; a 256x256 attention block 119 -> 108 ms), and its backward pass is the gather by the inverse
  order instead of a zero-fill and scatter-add that keeps the input alive. Plain expression:
  ``torch.gather(tokens, -1, order[:, None].expand(B, N, C))``, i.e. ``tokens[b, :, order[b]]``; ``order`` must
  be a permutation (it is: a sort's indices).
* :func:`zero_pad`: the FFN computes its hidden width zero-padded to a multiple of 16 (255 -> 256 at the
  default widths; the parameters keep the checkpoint's shapes). Plain expression: the FFN at its own width
  (``hidden_multiple = 1``); under ``torch.jit`` tracing it is that expression.
* ``HMHA.sorts_by_weights``: where a batch shares one channel order, the qkv and depthwise weights' output
  channels are re-ordered (``index_select`` on the weights) instead of gathering the ``(N, 3C)`` tokens
  forward and backward; the order comes from a gradient-free pass of q's own convolutions. Plain expression:
  the gather (:func:`permute_channels`), still used for per-image orders of several images and under tracing.
* :func:`head_products`: each head's ``q_i^T k_i`` from the ``(B, N, 2C)`` normalised q | k tokens, with a
  backward pass that gives the tokens' gradient as one row-major ``(B, N, 2C)`` tensor (one concatenation of
  row-major pieces). Autograd's own gives q's gradient as the transpose of a ``(c_i, N)`` product per head and
  then concatenates those column-major pieces twice (heads, then q | k): a slow transposing copy. A training
  step 0.96x (``tools/benchmark.py --mode train --revision f384048 --rounds 3``). Plain expression:
  ``[q_i.transpose(1, 2) @ k_i for each head]``.
* :func:`normalize_tokens`: the L2 normalisation over tokens with a hand-written backward pass that keeps only
  the output and the norms (four passes instead of ten): attention block forward+backward 0.74x at 128x128.
  Plain expression: ``F.normalize(tokens, dim=1)``.
* :func:`in_float32`: not for speed but for range: reductions over all tokens run in at least float32 under
  half-precision inference (a float16 sum of 65536 squares overflows); a no-op in float32 and float64.
"""
import contextlib
import functools

import torch
from torch.nn import functional as F


def at_least_float32(tokens):
    """``tokens`` in float32 when they are in a half precision (float16, bfloat16); float32/64 unchanged."""
    return tokens.to(torch.promote_types(tokens.dtype, torch.float32))


def in_float32(function):
    """Run ``function(tokens, ...)`` on ``tokens`` in at least float32, with autocast off.

    For the reductions over all N tokens (sums of squares, covariances): in float16 they overflow (a sum of
    65536 squares of 1 is already past float16's 65504) and in bfloat16 they keep 8 bits. Free in float32.
    """
    @functools.wraps(function)
    def wrapper(tokens, *args, **kwargs):
        if not torch.is_autocast_enabled(tokens.device.type):  # no context to trace for torch.export / ONNX
            return function(at_least_float32(tokens), *args, **kwargs)
        with torch.autocast(tokens.device.type, enabled=False):
            return function(at_least_float32(tokens), *args, **kwargs)
    return wrapper


class RecomputesStretches:
    """Mixin for modules that recompute their cheap stretches in the backward pass
    (:func:`pointwise_convs_of_recomputed`), on feature maps large enough for it to pay.

    ``recompute_stretches`` is switched off (by HINT's ``use_checkpoint``) when a checkpoint of the whole block
    recomputes them anyway: otherwise they would be computed three times per step instead of two.

    ``recompute_min_tokens``: only maps of at least this many tokens (``H * W`` per image) are recomputed. The
    recomputation costs its passes and a Python-level backward per stretch at every size, while what it saves
    grows with the map: without it one block's forward + backward took 80-92% of the time with it at every
    level of a 128x128 patch, keeping 6-26 MB more per block at 64x64 and below but 35-103 MB more at 128x128
    (``tools/speed_devices.py``, 2 threads). The default, 128 x 128 (16384 tokens), spends memory where it is
    cheap: a 128x128 training patch recomputes at full resolution only (a step 0.82x the time for 1.17x the
    peak memory of recomputing everywhere, ``tools/benchmark.py --mode train --revision 924615a --rounds 3``).
    HINT sets it on its blocks from its ``recompute_min_tokens`` argument (``network_g`` key).
    """
    recompute_stretches = True
    recompute_min_tokens = 128 * 128

    def recomputes(self, x):
        """Whether a call on ``x`` ``(B, C, H, W)`` recomputes its stretches: only where gradients are recorded
        (under ``torch.jit`` tracing, for ONNX export and complexity counts, never: nothing to decide there)."""
        if not self.recompute_stretches or not torch.is_grad_enabled() or torch.jit.is_tracing():
            return False
        return x.shape[-2] * x.shape[-1] >= self.recompute_min_tokens


_CONVOLUTION_BACKWARD = torch.ops.aten.convolution_backward.default


def _as(tensor, dtype):
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


class _PointwiseConvsOfRecomputed(torch.autograd.Function):
    """:func:`pointwise_convs_of_recomputed`: keeps ``inputs`` and the weights, recomputes the hidden tensor.

    ``apply(function, num_inputs, num_params, *inputs, *params, *weights_and_biases)``.
    """

    @staticmethod
    def forward(ctx, function, num_inputs, num_params, *tensors):
        inputs, params = tensors[:num_inputs], tensors[num_inputs:num_inputs + num_params]
        weights, biases = tensors[num_inputs + num_params::2], tensors[num_inputs + num_params + 1::2]
        device = inputs[0].device.type
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.function, ctx.num_inputs, ctx.num_params = function, num_inputs, num_params
        ctx.with_bias = [bias is not None for bias in biases]
        ctx.save_for_backward(*inputs, *params, *weights)
        hidden = function(*inputs)
        return tuple(F.conv2d(hidden, weight, bias) for weight, bias in zip(weights, biases))

    @staticmethod
    def backward(ctx, *grads):
        if torch.is_grad_enabled():  # create_graph=True
            raise RuntimeError('HINT\'s recomputing pointwise convolutions have no second derivative (backward with '
                               'create_graph=True); build HINT with use_checkpoint: true for that')
        saved = ctx.saved_tensors
        inputs = [x.detach().requires_grad_(x.requires_grad) for x in saved[:ctx.num_inputs]]
        params = saved[ctx.num_inputs:ctx.num_inputs + ctx.num_params]
        weights = saved[ctx.num_inputs + ctx.num_params:]
        device, autocast_enabled, autocast_dtype = ctx.autocast
        autocast = torch.autocast(device, dtype=autocast_dtype) if autocast_enabled else contextlib.nullcontext()
        with torch.enable_grad(), autocast:
            hidden = ctx.function(*inputs)
        grad_hidden, conv_grads = None, []
        for weight, with_bias, grad in zip(weights, ctx.with_bias, grads):
            if grad is None:
                conv_grads += [None, None]
                continue
            dtype = grad.dtype  # the convolution's compute dtype (a half one under autocast)
            grad_input, grad_weight, grad_bias = _CONVOLUTION_BACKWARD(
                grad, _as(hidden.detach(), dtype), _as(weight, dtype), [weight.shape[0]] if with_bias else None,
                [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, with_bias])
            grad_hidden = grad_input if grad_hidden is None else grad_hidden + grad_input
            conv_grads += [_as(grad_weight, weight.dtype), _as(grad_bias, weight.dtype) if with_bias else None]
        wanted = [t for t in (*inputs, *params) if t.requires_grad]
        found = iter(torch.autograd.grad(hidden, wanted, _as(grad_hidden, hidden.dtype), allow_unused=True)
                     if wanted and grad_hidden is not None else [None] * len(wanted))
        input_grads = [next(found) if t.requires_grad else None for t in (*inputs, *params)]
        return (None, None, None, *input_grads, *conv_grads)


def pointwise_convs_of_recomputed(function, inputs, params, convs):
    """``[conv(function(*inputs)) for conv in convs]``, keeping only ``inputs`` for the backward pass.

    ``convs``: ``(weight (C_out, C, 1, 1), bias or None)`` pairs; ``params``: the parameters ``function`` uses (they
    get their gradients here). A 1x1 convolution keeps its input for its weight gradient; when that input is
    ``function``'s output of a cheap stretch (a LayerNorm, a gate), this keeps the stretch's inputs instead and
    recomputes it in the backward pass: the convolution itself is not recomputed, as a checkpoint of the
    stretch and the convolution together would do. Plain expression: ``[F.conv2d(function(*inputs), w, b)]``.
    Without gradients, under ``torch.compile`` (which plans recomputation itself) and under ``torch.jit`` tracing
    (mmengine's complexity count, ONNX export) it is that expression.
    """
    if any(weight.dim() != 4 or weight.shape[-2:] != (1, 1) for weight, _ in convs):
        raise ValueError('pointwise_convs_of_recomputed takes 1x1 convolution weights (C_out, C, 1, 1)')
    flat = [tensor for pair in convs for tensor in pair]
    if not torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
        hidden = function(*inputs)
        return [F.conv2d(hidden, weight, bias) for weight, bias in convs]
    return list(_PointwiseConvsOfRecomputed.apply(function, len(inputs), len(params), *inputs, *params, *flat))


def channel_mix(conv, x, channel_dim):
    """Apply a kernel-1 ``nn.Conv1d`` along ``channel_dim`` (1 or -1) of ``x`` without its generic Conv1d path.

    The cache layers are stored as Conv1d for checkpoint compatibility. Along the last axis of ``(B, N, C)``
    tokens it is a 1x1 ``conv2d`` of the ``(B, C, N, 1)`` channels-last view (oneDNN's kernel, faster than
    ``F.linear`` and Conv1d: ``tools/speed_devices.py``); along axis 1
    of the small ``(B, c, c)`` maps, one matrix product. Under ``torch.jit`` tracing (mmengine's count, which
    files 2-D convolutions apart) it is ``F.linear``.
    """
    weight = conv.weight.squeeze(-1)
    if channel_dim == -1:
        if torch.jit.is_tracing() or x.dim() != 3:
            return F.linear(x, weight, conv.bias)
        batch, count, channels = x.shape
        image = x.reshape(batch, count, 1, channels).permute(0, 3, 1, 2)  # (B, C, N, 1), channels-last
        out = F.conv2d(image, weight[:, :, None, None], conv.bias)
        return out.permute(0, 2, 3, 1).reshape(batch, count, weight.shape[0])
    out = torch.matmul(weight, x)
    return out if conv.bias is None else out + conv.bias.unsqueeze(-1)


def zero_pad(tensor, dim, size):
    """``tensor`` with zeros appended along ``dim`` up to ``size`` (itself when it has that size already).

    For the FFN's hidden width (:class:`~hint_plugin.archs.layers.GatedDconvFeedForward`): its weights padded
    with zero rows (the input convolution, the depthwise one) and zero columns (the output convolution) give
    zero extra channels and the same output, to rounding, while every convolution and element-wise pass runs on
    a channel count that is a multiple of 16.
    """
    extra = size - tensor.shape[dim]
    if extra == 0:
        return tensor
    return F.pad(tensor, [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [0, extra])


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


def _head_slices(qk, head_channels):
    """The heads' ``(q_i, k_i)`` views of ``(B, N, 2C)`` tokens whose first half is q and second half k."""
    q, k = qk.split(qk.shape[-1] // 2, dim=-1)
    return zip(q.split(head_channels, -1), k.split(head_channels, -1))


def _plain_head_products(qk, head_channels):
    return [q.transpose(1, 2) @ k for q, k in _head_slices(qk, head_channels)]


class _HeadProducts(torch.autograd.Function):
    """:func:`head_products` with the tokens' gradient assembled once, row-major: for ``P_i = q_i^T k_i``,
    ``dq_i = k_i dP_i^T`` and ``dk_i = q_i dP_i``, each ``(B, N, c_i)``, concatenated as ``[dq_1 .. dq_n, dk_1 ..
    dk_n]``. Made of differentiable operations, so a second derivative is right too."""

    @staticmethod
    def forward(ctx, qk, head_channels):
        ctx.head_channels = head_channels
        ctx.save_for_backward(qk)
        return tuple(_plain_head_products(qk, head_channels))

    @staticmethod
    def backward(ctx, *grads):
        qk, = ctx.saved_tensors
        grad_q, grad_k = [], []
        for (q, k), grad in zip(_head_slices(qk, ctx.head_channels), grads):  # unused heads' grads come as zeros
            grad = _as(grad, qk.dtype)  # under autocast the products may be in another dtype than the tokens
            grad_q.append(k @ grad.transpose(1, 2))
            grad_k.append(q @ grad)
        return torch.cat(grad_q + grad_k, dim=-1), None


def head_products(qk, head_channels):
    """Each head's ``q_i^T k_i`` ``(B, c_i, c_i)`` from tokens ``(B, N, 2C)`` = ``[q | k]``, heads of sizes
    ``head_channels`` (summing to C) taken in order from q and from k."""
    if torch.is_grad_enabled() and qk.requires_grad and not torch.jit.is_tracing():
        return list(_HeadProducts.apply(qk, tuple(head_channels)))
    return _plain_head_products(qk, head_channels)


@in_float32
def _channel_norms(tokens):
    """L2 norms over the tokens ``(B, N, C) -> (B, 1, C)``, in at least float32 (:func:`in_float32`).

    Written out because ``torch.linalg.vector_norm`` over a non-contiguous axis is several times slower on CPU
    than a square, a sum and a square root (measured: 35 ms against 9 ms for 65536 x 96 tokens).
    """
    return tokens.square().sum(dim=1, keepdim=True).sqrt()


class _TokenNormalization(torch.autograd.Function):
    """:func:`normalize_tokens` with its gradient written out: ``(g - y * sum_N(g * y)) / norm``.

    Autograd's own backward pass of the division by a norm keeps the input and takes about ten passes over it;
    this one keeps only the output ``y`` (which the attention products keep anyway) and the ``(B, 1, C)``
    norms, and takes four.
    """

    @staticmethod
    def forward(ctx, tokens, eps):
        norm = _channel_norms(tokens)
        clamped = norm.clamp_min(eps)
        out = (tokens / clamped).to(tokens.dtype)
        ctx.save_for_backward(out, clamped, norm >= eps)  # a clamped norm is a constant: no projection term
        return out

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # create_graph=True: the saved norms are constants, so it would be wrong
            raise RuntimeError('HINT\'s token normalisation has no second derivative (backward with create_graph=True)')
        out, norm, unclamped = ctx.saved_tensors
        projection = (grad * out).sum(dim=1, keepdim=True) * unclamped
        return (grad - out * projection) / norm, None


def normalize_tokens(tokens, eps=1e-12):
    """``F.normalize(tokens, dim=1)`` for ``(B, N, C)``: each channel divided by its L2 norm over the tokens.

    The norms are taken in at least float32; the result has the dtype of ``tokens`` (its entries are at most 1).
    """
    if torch.is_grad_enabled() and tokens.requires_grad:
        return _TokenNormalization.apply(tokens, eps)
    return (tokens / _channel_norms(tokens).clamp_min(eps)).to(tokens.dtype)
