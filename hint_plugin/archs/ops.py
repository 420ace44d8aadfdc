"""HINT's speed devices (``fast: true``): each equals, to rounding, the plain branch beside its call
(tests/archs/test_ops.py; gains: docs/benchmarks.md)."""
import functools

import torch
from torch.nn import functional as F


def at_least_float32(tensor):
    """``tensor`` in float32 if in a half precision, else unchanged."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def in_float32(function):
    """``function(tokens, ...)`` on ``tokens`` in at least float32, autocast off (a float16 sum of squares
    overflows)."""
    @functools.wraps(function)
    def wrapper(tokens, *args):
        if not torch.is_autocast_enabled(tokens.device.type):  # no context: none to trace for export
            return function(at_least_float32(tokens), *args)
        with torch.autocast(tokens.device.type, enabled=False):
            return function(at_least_float32(tokens), *args)
    return wrapper


def restructures(fast):
    """``fast``, except under ``torch.jit`` tracing (ONNX export, complexity counts: the network's own ops)."""
    return fast and not torch.jit.is_tracing()


def recomputes(x, min_tokens):
    """Whether a call on ``x`` ``(B, C, H, W)`` recomputes: recording gradients, not compiling or tracing,
    ``H * W >= min_tokens`` (``None``: never)."""
    return (min_tokens is not None and torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing() and x.shape[-2] * x.shape[-1] >= min_tokens)


class _ConvsOfRecomputed(torch.autograd.Function):
    """``apply(stretch, num_inputs, num_params, *inputs, *params, *weights_and_biases)``."""

    @staticmethod
    def forward(ctx, stretch, num_inputs, num_params, *tensors):
        split = num_inputs + num_params
        weights, biases = tensors[split::2], tensors[split + 1::2]
        device = tensors[0].device.type
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        ctx.stretch, ctx.num_inputs, ctx.split = stretch, num_inputs, split
        ctx.with_bias = [bias is not None for bias in biases]
        ctx.save_for_backward(*tensors[:split], *weights)
        hidden = stretch(*tensors[:num_inputs])
        return tuple(F.conv2d(hidden, weight, bias) for weight, bias in zip(weights, biases))

    @staticmethod
    def backward(ctx, *grads):
        if torch.is_grad_enabled():  # create_graph=True
            raise RuntimeError('HINT\'s recomputed stretches have no second derivative (create_graph=True); '
                               'build HINT with fast: false')
        saved, n = ctx.saved_tensors, ctx.num_inputs
        leaves = [x.detach().requires_grad_(x.requires_grad) for x in saved[:n]] + list(saved[n:ctx.split])
        device, dtype, enabled = ctx.autocast
        with torch.enable_grad(), torch.autocast(device, dtype=dtype, enabled=enabled):
            hidden = ctx.stretch(*leaves[:n])
        grad_hidden, conv_grads = 0, []
        for weight, with_bias, grad in zip(saved[ctx.split:], ctx.with_bias, grads):
            dtype = grad.dtype  # the convolution's compute dtype (a half one under autocast)
            grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward.default(
                grad, hidden.detach().to(dtype), weight.to(dtype), [weight.shape[0]] if with_bias else None,
                [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, with_bias])
            grad_hidden = grad_hidden + grad_input
            conv_grads += [grad_weight.to(weight.dtype), grad_bias.to(weight.dtype) if with_bias else None]
        wanted = [t for t in leaves if t.requires_grad]
        found = iter(torch.autograd.grad(hidden, wanted, grad_hidden.to(hidden.dtype), allow_unused=True)
                     if wanted else [])
        return (None, None, None, *[next(found) if t.requires_grad else None for t in leaves], *conv_grads)


def convs_of_recomputed(stretch, inputs, params, convs):
    """``[F.conv2d(stretch(*inputs), w, b) for w, b in convs]`` (1x1), keeping ``inputs``: the cheap stretch (a
    norm, a gate; ``params`` its parameters) is recomputed in the backward pass."""
    flat = [tensor for pair in convs for tensor in pair]
    return list(_ConvsOfRecomputed.apply(stretch, len(inputs), len(params), *inputs, *params, *flat))


def channel_mix(conv, tokens):
    """A kernel-1 ``nn.Conv1d`` of tokens ``(B, N, C)`` as a 1x1 ``conv2d`` of their channels-last view (``F.linear``
    under tracing)."""
    weight = conv.weight.squeeze(-1)
    if torch.jit.is_tracing():
        return F.linear(tokens, weight, conv.bias)
    batch, count, channels = tokens.shape
    out = F.conv2d(tokens.reshape(batch, count, 1, channels).permute(0, 3, 1, 2), weight[:, :, None, None], conv.bias)
    return out.permute(0, 2, 3, 1).reshape(batch, count, weight.shape[0])


def zero_pad(tensor, dim, size):
    """``tensor`` with zeros appended along ``dim`` up to ``size``."""
    extra = size - tensor.shape[dim]
    return tensor if extra == 0 else F.pad(tensor, [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [0, extra])


class _HeadProducts(torch.autograd.Function):
    """Backward ``dq_i = k_i dP_i^T``, ``dk_i = q_i dP_i`` concatenated once, row-major (autograd's own
    concatenates transposed pieces twice); differentiable."""

    @staticmethod
    def heads(qk, head_channels):
        q, k = qk.chunk(2, dim=-1)
        return zip(q.split(head_channels, -1), k.split(head_channels, -1))

    @staticmethod
    def forward(ctx, qk, head_channels):
        ctx.head_channels = head_channels
        ctx.save_for_backward(qk)
        return tuple(q.transpose(1, 2) @ k for q, k in _HeadProducts.heads(qk, head_channels))

    @staticmethod
    def backward(ctx, *grads):
        qk, = ctx.saved_tensors
        grads = [grad.to(qk.dtype) for grad in grads]  # under autocast the products may be in another dtype
        pieces = list(_HeadProducts.heads(qk, ctx.head_channels))
        return torch.cat([k @ g.transpose(1, 2) for (_, k), g in zip(pieces, grads)]
                         + [q @ g for (q, _), g in zip(pieces, grads)], dim=-1), None


def head_products(qk, head_channels):
    """Each head's ``q_i^T k_i`` from ``qk`` ``(B, N, 2C)`` = ``[q | k]`` (plain: ``hmha_arch.head_products``)."""
    return list(_HeadProducts.apply(qk, tuple(head_channels)))


@in_float32
def channel_norms(tokens):
    """L2 norms over the tokens, ``(B, N, C) -> (B, 1, C)`` (on CPU faster than ``vector_norm``)."""
    return tokens.square().sum(dim=1, keepdim=True).sqrt()


class _TokenNormalization(torch.autograd.Function):
    """Backward ``(g - y sum_N(g y)) / norm``, keeping only ``y`` and the norms (four passes, not ten)."""

    @staticmethod
    def forward(ctx, tokens, eps):
        norm = channel_norms(tokens)
        clamped = norm.clamp_min(eps)
        out = (tokens / clamped).to(tokens.dtype)
        ctx.save_for_backward(out, clamped, norm >= eps)  # a clamped norm is a constant: no projection term
        return out

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # create_graph=True: the saved norms are constants here
            raise RuntimeError('HINT\'s token normalisation has no second derivative (create_graph=True)')
        out, norm, unclamped = ctx.saved_tensors
        return (grad - out * (grad * out).sum(dim=1, keepdim=True) * unclamped) / norm, None


def normalize_tokens(tokens, eps=1e-12):
    """``F.normalize(tokens, dim=1)`` for ``(B, N, C)``, norms in at least float32, in the tokens' dtype."""
    if torch.is_grad_enabled() and tokens.requires_grad and not torch.jit.is_tracing():
        return _TokenNormalization.apply(tokens, eps)
    return (tokens / channel_norms(tokens).clamp_min(eps)).to(tokens.dtype)


def fuses_convolutions(x):
    """Whether a call on ``x`` uses oneDNN's convolutions with fused element-wise tails: CPU inference (no gradient
    recorded) in float32 or bfloat16, not tracing or compiling."""
    dtype = torch.get_autocast_dtype('cpu') if torch.is_autocast_enabled('cpu') else x.dtype
    return (x.device.type == 'cpu' and dtype in (torch.float32, torch.bfloat16) and not torch.is_grad_enabled()
            and torch.backends.mkldnn.is_available() and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling())


def fused_conv(x, weight, bias, groups, other=None):
    """``gelu(conv2d(x))`` (erf form) or, given ``other``, ``conv2d(x) * other``, in one oneDNN pass, ``padding =
    kernel // 2``, in autocast's dtype where it is on."""
    dtype = torch.get_autocast_dtype('cpu') if torch.is_autocast_enabled('cpu') else x.dtype
    x, weight, bias = (t if t is None else t.to(dtype) for t in (x, weight, bias))
    layout = [[weight.shape[-1] // 2] * 2, [1, 1], [1, 1], groups]
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *layout, 'gelu', [], 'none')
    return torch.ops.mkldnn._convolution_pointwise.binary(x, other.to(dtype), weight, bias, *layout, 'mul', None,
                                                          None, [], None)
