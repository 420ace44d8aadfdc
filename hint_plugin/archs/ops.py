"""HINT's speed devices (``fast: true``): each computes what the plain branch beside its call computes, to
rounding, in less time or memory (tests/archs/test_ops.py; their gains: docs/benchmarks.md)."""
import contextlib
import functools

import torch
from torch.nn import functional as F


def at_least_float32(tensor):
    """``tensor`` in float32 when it is in a half precision; float32 and float64 unchanged."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def in_float32(function):
    """Run ``function(tokens, ...)`` on ``tokens`` in at least float32, autocast off: on both paths, for range (a
    float16 sum of 65536 squares overflows)."""
    @functools.wraps(function)
    def wrapper(tokens, *args):
        if not torch.is_autocast_enabled(tokens.device.type):  # no context to trace for torch.export / ONNX
            return function(at_least_float32(tokens), *args)
        with torch.autocast(tokens.device.type, enabled=False):
            return function(at_least_float32(tokens), *args)
    return wrapper


def restructures(fast):
    """``fast``, except under ``torch.jit`` tracing (ONNX export, complexity counts: the network's own operations)."""
    return fast and not torch.jit.is_tracing()


def recomputes(x, min_tokens):
    """Whether a call on ``x`` ``(B, C, H, W)`` recomputes (:func:`convs_of_recomputed`): gradients recorded, not
    compiling or tracing, ``H * W >= min_tokens`` (``None``: never)."""
    return (min_tokens is not None and torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing() and x.shape[-2] * x.shape[-1] >= min_tokens)


def _as(tensor, dtype):
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


class _ConvsOfRecomputed(torch.autograd.Function):
    """``apply(stretch, num_inputs, num_params, *inputs, *params, *weights_and_biases)``."""

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
    """``[F.conv2d(stretch(*inputs), w, b) for w, b in convs]`` (1x1), keeping ``inputs`` instead of the stretch's
    output: the cheap stretch (a norm, a gate; ``params`` its parameters) is recomputed in the backward pass."""
    flat = [tensor for pair in convs for tensor in pair]
    return list(_ConvsOfRecomputed.apply(stretch, len(inputs), len(params), *inputs, *params, *flat))


def channel_mix(conv, x, channel_dim):
    """A kernel-1 ``nn.Conv1d`` along ``channel_dim``: ``-1`` of tokens ``(B, N, C)`` as a 1x1 ``conv2d`` of their
    channels-last view (``F.linear`` under tracing), ``1`` of maps ``(B, c, c)`` as a matrix product."""
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
    """``tensor`` with zeros appended along ``dim`` up to ``size`` (zero weights: zero extra channels)."""
    extra = size - tensor.shape[dim]
    return tensor if extra == 0 else F.pad(tensor, [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [0, extra])


class _HeadProducts(torch.autograd.Function):
    """Backward ``dq_i = k_i dP_i^T``, ``dk_i = q_i dP_i``, concatenated once, row-major (autograd's own
    concatenates transposed pieces twice); differentiable, so second derivatives are right too."""

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
    """Each head's ``q_i^T k_i`` from tokens ``qk`` ``(B, N, 2C)`` = ``[q | k]`` (plain: ``hmha_arch.head_products``)."""
    return list(_HeadProducts.apply(qk, tuple(head_channels)))


@in_float32
def channel_norms(tokens):
    """L2 norms over the tokens, ``(B, N, C) -> (B, 1, C)`` (faster on CPU than ``vector_norm`` over that axis)."""
    return tokens.square().sum(dim=1, keepdim=True).sqrt()


class _TokenNormalization(torch.autograd.Function):
    """Backward ``(g - y sum_N(g y)) / norm``, keeping only ``y`` and the norms (four passes instead of ten)."""

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
    """``F.normalize(tokens, dim=1)`` for ``(B, N, C)``, norms in at least float32, in the dtype of ``tokens``."""
    if torch.is_grad_enabled() and tokens.requires_grad and not torch.jit.is_tracing():
        return _TokenNormalization.apply(tokens, eps)
    return (tokens / channel_norms(tokens).clamp_min(eps)).to(tokens.dtype)
