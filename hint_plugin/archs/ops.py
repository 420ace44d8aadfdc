"""The fast branches of HINT (``fast: true``): each computes what the plain expression beside its call computes,
to rounding, in less time or memory; tests/archs/test_ops.py checks each against the plain branch, forward and
backward. What each gained, and the command that measured it: docs/benchmarks.md.
"""
import contextlib
import functools

import torch
from torch.nn import functional as F


def at_least_float32(tensor):
    """``tensor`` in float32 when it is in a half precision; float32 and float64 unchanged."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def in_float32(function):
    """Run ``function(tokens, ...)`` on ``tokens`` in at least float32 with autocast off (both paths: not a speed
    device but range: a float16 sum of 65536 squares overflows, bfloat16 keeps 8 bits)."""
    @functools.wraps(function)
    def wrapper(tokens, *args):
        if not torch.is_autocast_enabled(tokens.device.type):  # no context to trace for torch.export / ONNX
            return function(at_least_float32(tokens), *args)
        with torch.autocast(tokens.device.type, enabled=False):
            return function(at_least_float32(tokens), *args)
    return wrapper


def restructures(fast):
    """Whether the devices that change which operations run (padded FFN width, re-ordered weights, recomputation,
    hand-written backward passes) apply: ``fast``, but not under ``torch.jit`` tracing (ONNX export, complexity
    counts), which records the network's own operations."""
    return fast and not torch.jit.is_tracing()


def recomputes(x, min_tokens):
    """Whether a call on ``x`` ``(B, C, H, W)`` recomputes its cheap stretches (:func:`convs_of_recomputed`):
    gradients recorded, not compiling or tracing, ``H * W >= min_tokens`` (``None``: never)."""
    return (min_tokens is not None and torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing() and x.shape[-2] * x.shape[-1] >= min_tokens)


def _as(tensor, dtype):
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


class _ConvsOfRecomputed(torch.autograd.Function):
    """:func:`convs_of_recomputed`; ``apply(stretch, num_inputs, num_params, *inputs, *params, *weights_and_biases)``."""

    @staticmethod
    def forward(ctx, stretch, num_inputs, num_params, *tensors):
        inputs, params = tensors[:num_inputs], tensors[num_inputs:num_inputs + num_params]
        weights, biases = tensors[num_inputs + num_params::2], tensors[num_inputs + num_params + 1::2]
        device = inputs[0].device.type
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.stretch, ctx.num_inputs, ctx.num_params = stretch, num_inputs, num_params
        ctx.with_bias = [bias is not None for bias in biases]
        ctx.save_for_backward(*inputs, *params, *weights)
        hidden = stretch(*inputs)
        return tuple(F.conv2d(hidden, weight, bias) for weight, bias in zip(weights, biases))

    @staticmethod
    def backward(ctx, *grads):
        if torch.is_grad_enabled():  # create_graph=True
            raise RuntimeError('HINT\'s recomputing pointwise convolutions have no second derivative (backward with '
                               'create_graph=True); build HINT with fast: false or use_checkpoint: true for that')
        saved = ctx.saved_tensors
        inputs = [x.detach().requires_grad_(x.requires_grad) for x in saved[:ctx.num_inputs]]
        params = saved[ctx.num_inputs:ctx.num_inputs + ctx.num_params]
        device, autocast_enabled, autocast_dtype = ctx.autocast
        autocast = torch.autocast(device, dtype=autocast_dtype) if autocast_enabled else contextlib.nullcontext()
        with torch.enable_grad(), autocast:
            hidden = ctx.stretch(*inputs)
        grad_hidden, conv_grads = None, []
        for weight, with_bias, grad in zip(saved[ctx.num_inputs + ctx.num_params:], ctx.with_bias, grads):
            if grad is None:
                conv_grads += [None, None]
                continue
            dtype = grad.dtype  # the convolution's compute dtype (a half one under autocast)
            grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward.default(
                grad, _as(hidden.detach(), dtype), _as(weight, dtype), [weight.shape[0]] if with_bias else None,
                [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, with_bias])
            grad_hidden = grad_input if grad_hidden is None else grad_hidden + grad_input
            conv_grads += [_as(grad_weight, weight.dtype), _as(grad_bias, weight.dtype) if with_bias else None]
        wanted = [t for t in (*inputs, *params) if t.requires_grad]
        found = iter(torch.autograd.grad(hidden, wanted, _as(grad_hidden, hidden.dtype), allow_unused=True)
                     if wanted and grad_hidden is not None else [None] * len(wanted))
        return (None, None, None, *[next(found) if t.requires_grad else None for t in (*inputs, *params)], *conv_grads)


def convs_of_recomputed(stretch, inputs, params, convs):
    """``[F.conv2d(stretch(*inputs), w, b) for w, b in convs]`` (1x1 weights), keeping ``inputs`` instead of the
    stretch's output for the backward pass, where the cheap stretch (a LayerNorm, a gate) is recomputed and the
    convolutions are not; ``params``: the parameters ``stretch`` uses."""
    flat = [tensor for pair in convs for tensor in pair]
    return list(_ConvsOfRecomputed.apply(stretch, len(inputs), len(params), *inputs, *params, *flat))


def channel_mix(conv, x, channel_dim):
    """A kernel-1 ``nn.Conv1d`` applied along ``channel_dim`` of ``x``: ``-1`` of tokens ``(B, N, C)``, as a 1x1
    ``conv2d`` of their ``(B, C, N, 1)`` channels-last view (``F.linear`` under tracing, where complexity counts
    file it apart from the 2-D convolutions); ``1`` of maps ``(B, c, c)``, one matrix product.
    Plain: ``conv(x.transpose(1, 2)).transpose(1, 2)``, ``conv(x)``."""
    weight = conv.weight.squeeze(-1)
    if channel_dim == 1:
        out = torch.matmul(weight, x)
        return out if conv.bias is None else out + conv.bias.unsqueeze(-1)
    if torch.jit.is_tracing():
        return F.linear(x, weight, conv.bias)
    batch, count, channels = x.shape
    out = F.conv2d(x.reshape(batch, count, 1, channels).permute(0, 3, 1, 2), weight[:, :, None, None], conv.bias)
    return out.permute(0, 2, 3, 1).reshape(batch, count, weight.shape[0])


def zero_pad(tensor, dim, size):
    """``tensor`` with zeros appended along ``dim`` up to ``size``: the FFN's weights padded with zero rows and
    columns give zero extra hidden channels, so the same output on a width that is a multiple of 16."""
    extra = size - tensor.shape[dim]
    return tensor if extra == 0 else F.pad(tensor, [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [0, extra])


class _HeadProducts(torch.autograd.Function):
    """:func:`head_products`; the backward pass, ``dq_i = k_i dP_i^T`` and ``dk_i = q_i dP_i``, gives the tokens'
    gradient as one row-major ``(B, N, 2C)`` concatenation (autograd's own concatenates transposed pieces twice).
    Made of differentiable operations, so a second derivative is right too."""

    @staticmethod
    def forward(ctx, qk, head_channels):
        ctx.head_channels = head_channels
        ctx.save_for_backward(qk)
        return tuple(q.transpose(1, 2) @ k for q, k in _head_slices(qk, head_channels))

    @staticmethod
    def backward(ctx, *grads):
        qk, = ctx.saved_tensors
        grad_q, grad_k = [], []
        for (q, k), grad in zip(_head_slices(qk, ctx.head_channels), grads):
            grad = _as(grad, qk.dtype)  # under autocast the products may be in another dtype than the tokens
            grad_q.append(k @ grad.transpose(1, 2))
            grad_k.append(q @ grad)
        return torch.cat(grad_q + grad_k, dim=-1), None


def _head_slices(qk, head_channels):
    q, k = qk.chunk(2, dim=-1)
    return zip(q.split(head_channels, -1), k.split(head_channels, -1))


def head_products(qk, head_channels):
    """Each head's ``q_i^T k_i`` ``(B, c_i, c_i)`` from tokens ``qk`` ``(B, N, 2C)`` = ``[q | k]`` that need a
    gradient. Plain: :func:`hint_plugin.archs.hmha_arch.head_products`."""
    return list(_HeadProducts.apply(qk, tuple(head_channels)))


@in_float32
def channel_norms(tokens):
    """L2 norms over the tokens, ``(B, N, C) -> (B, 1, C)``, as a square, a sum and a square root (several times
    faster on CPU than ``torch.linalg.vector_norm`` over a non-contiguous axis)."""
    return tokens.square().sum(dim=1, keepdim=True).sqrt()


class _TokenNormalization(torch.autograd.Function):
    """:func:`normalize_tokens` with the gradient ``(g - y sum_N(g y)) / norm``, keeping only the output ``y`` and
    the ``(B, 1, C)`` norms (autograd's own keeps the input and takes about ten passes, this four)."""

    @staticmethod
    def forward(ctx, tokens, eps):
        norm = channel_norms(tokens)
        clamped = norm.clamp_min(eps)
        out = (tokens / clamped).to(tokens.dtype)
        ctx.save_for_backward(out, clamped, norm >= eps)  # a clamped norm is a constant: no projection term
        return out

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # create_graph=True: the saved norms are constants, so it would be wrong
            raise RuntimeError('HINT\'s token normalisation has no second derivative (backward with create_graph=True)')
        out, norm, unclamped = ctx.saved_tensors
        return (grad - out * (grad * out).sum(dim=1, keepdim=True) * unclamped) / norm, None


def normalize_tokens(tokens, eps=1e-12):
    """``F.normalize(tokens, dim=1)`` for ``(B, N, C)``, the norms in at least float32, the result in the dtype of
    ``tokens``: the hand-written backward pass where a gradient is recorded (and not tracing)."""
    if torch.is_grad_enabled() and tokens.requires_grad and not torch.jit.is_tracing():
        return _TokenNormalization.apply(tokens, eps)
    return (tokens / channel_norms(tokens).clamp_min(eps)).to(tokens.dtype)
