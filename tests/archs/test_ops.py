"""The speed devices of hint_plugin.archs.ops against the plain PyTorch expressions they stand for, forward and
backward, alone and inside the whole network."""
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from hint_plugin.archs import hmha_arch, layers, ops, qkcu_arch
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA
from hint_plugin.archs.ops import (channel_mix, head_products, normalize_tokens, permute_channels,
                                  pointwise_convs_of_recomputed)


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('channel_dim', [1, -1])
def test_channel_mix_is_the_conv1d_forward_and_backward(bias, channel_dim):
    torch.manual_seed(0)
    conv = nn.Conv1d(6, 4, kernel_size=1, bias=bias).double()
    x = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)  # (B, C, L): Conv1d's own layout
    grad = torch.randn(3, 4, 5, dtype=torch.float64)
    plain = conv(x)
    ours = channel_mix(conv, x, 1) if channel_dim == 1 else channel_mix(conv, x.transpose(1, 2), -1).transpose(1, 2)
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    inputs = [x, conv.weight] + ([conv.bias] if bias else [])
    for a, b in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def plain_pointwise_convs(function, inputs, params, convs):
    """The expression :func:`pointwise_convs_of_recomputed` stands for."""
    hidden = function(*inputs)
    return [torch.nn.functional.conv2d(hidden, weight, bias) for weight, bias in convs]


@pytest.mark.parametrize('bias', [True, False])
def test_pointwise_convs_of_recomputed_equal_the_plain_expression_forward_and_backward(bias):
    torch.manual_seed(0)
    norm = nn.GroupNorm(1, 6).double()  # a stretch with parameters of its own
    convs = [nn.Conv2d(6, c, 1, bias=bias).double() for c in (4, 5)]
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = torch.randn(2, 6, 5, 7, dtype=torch.float64)  # an input that takes no gradient

    def stretch(a, b):
        return torch.nn.functional.gelu(norm(a)) * b

    pairs = [(conv.weight, conv.bias) for conv in convs]
    leaves = [x, *norm.parameters(), *(t for conv in convs for t in conv.parameters())]
    grads = [torch.randn(2, c, 5, 7, dtype=torch.float64) for c in (4, 5)]
    results = {}
    for name, device in (('ours', pointwise_convs_of_recomputed), ('plain', plain_pointwise_convs)):
        outputs = device(stretch, (x, y), list(norm.parameters()), pairs)
        results[name] = outputs, torch.autograd.grad(outputs, leaves, grads)
    for a, b in zip(results['ours'][0] + list(results['ours'][1]), results['plain'][0] + list(results['plain'][1])):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_pointwise_convs_of_recomputed_keep_only_their_inputs():
    # the point of the device: the stretch's output (C_hidden channels) is not kept for the backward pass
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    weight = torch.randn(3, 16, 1, 1, requires_grad=True)

    def widen(a):
        return torch.cat([a.exp()] * 4, dim=1)

    for device, kept in ((pointwise_convs_of_recomputed, {(1, 4, 8, 8), (3, 16, 1, 1)}),
                         (plain_pointwise_convs, {(1, 4, 8, 8), (1, 16, 8, 8), (3, 16, 1, 1)})):
        shapes = set()
        with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.add(tuple(t.shape)) or t, lambda t: t):
            device(widen, (x, ), [], [(weight, None)])[0].sum().backward()
        assert shapes == kept, device.__name__


def test_pointwise_convs_of_recomputed_under_bf16_autocast_follow_the_plain_expression():
    torch.manual_seed(0)
    norm = nn.LayerNorm(8)
    weight = torch.randn(6, 8, 1, 1, requires_grad=True)
    x = torch.randn(1, 8, 4, 4, requires_grad=True)

    def stretch(a):
        return norm(a.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    results = []
    for device in (pointwise_convs_of_recomputed, plain_pointwise_convs):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out, = device(stretch, (x, ), list(norm.parameters()), [(weight, None)])
        results.append((out, torch.autograd.grad(out.float().square().sum(), [x, weight, norm.weight])))
    (ours, ours_grads), (plain, plain_grads) = results
    assert ours.dtype == plain.dtype == torch.bfloat16 and torch.equal(ours, plain)
    for a, b in zip(ours_grads, plain_grads):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


def test_pointwise_convs_of_recomputed_refuse_a_second_derivative():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    out, = pointwise_convs_of_recomputed(torch.tanh, (x, ), [], [(torch.ones(1, 2, 1, 1, dtype=torch.float64), None)])
    with pytest.raises(RuntimeError, match='no second derivative'):
        torch.autograd.grad(out.sum(), x, create_graph=True)


def test_token_normalization_gradient_is_f_normalize_gradient():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 9, 6, generator=generator, dtype=torch.float64)
    tokens[1, :, 2] = 1e-14  # a channel whose norm is clamped to eps: there the gradient is g / eps
    grad = torch.randn(2, 9, 6, generator=generator, dtype=torch.float64)
    ours, = torch.autograd.grad(normalize_tokens(tokens.requires_grad_()), tokens, grad)
    expected, = torch.autograd.grad(torch.nn.functional.normalize(tokens, dim=1), tokens, grad)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(normalize_tokens(tokens), torch.nn.functional.normalize(tokens, dim=1))


def plain_head_products(qk, head_channels):
    """The expression :func:`head_products` stands for."""
    q, k = qk.split(qk.shape[-1] // 2, dim=-1)
    return [q_i.transpose(1, 2) @ k_i for q_i, k_i in zip(q.split(head_channels, -1), k.split(head_channels, -1))]


def test_head_products_equal_the_plain_expression_forward_backward_and_second_derivative():
    generator = torch.Generator().manual_seed(0)
    sizes = (1, 2, 2, 3)
    # strided q | k, as in HMHA: the first 2C of (B, N, 3C) tokens
    tokens = torch.randn(2, 11, 24, generator=generator, dtype=torch.float64, requires_grad=True)
    grads = [torch.randn(2, c, c, generator=generator, dtype=torch.float64) for c in sizes]
    results = {}
    for name, device in (('ours', head_products), ('plain', plain_head_products)):
        products = device(tokens[..., :16], sizes)
        gradient, = torch.autograd.grad(products, tokens, grads, create_graph=True)
        second, = torch.autograd.grad((gradient * gradient).sum(), tokens)
        results[name] = products, gradient, second
    for ours, plain in zip(*(results[name] for name in ('ours', 'plain'))):
        for a, b in zip(ours if isinstance(ours, list) else [ours], plain if isinstance(plain, list) else [plain]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # the point of the device: the backward pass concatenates once, row-major pieces only (autograd's own
    # concatenates the transposed per-head gradients of q, then q | k)
    def concatenations(device):
        qk = tokens[..., :16].detach().clone().requires_grad_()
        products = device(qk, sizes)
        with CatInputs() as seen:
            torch.autograd.backward(products, grads)
        return seen.layouts

    assert concatenations(head_products) == [[True] * 8]
    plain = concatenations(plain_head_products)
    assert len(plain) > 1 and not all(all(layouts) for layouts in plain)


class CatInputs(TorchDispatchMode):
    """Records, for every ``aten.cat``, whether each of its inputs is contiguous."""

    def __enter__(self):
        self.layouts = []
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.cat.default:
            self.layouts.append([t.is_contiguous() for t in args[0]])
        return func(*args, **(kwargs or {}))


def test_head_products_follow_bf16_autocast():
    torch.manual_seed(0)
    qk = torch.randn(1, 32, 16, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours, plain = head_products(qk, (1, 2, 2, 3)), plain_head_products(qk, (1, 2, 2, 3))
    assert [p.dtype for p in ours] == [p.dtype for p in plain] == [torch.bfloat16] * 4
    grad_ours, = torch.autograd.grad(sum(p.float().sum() for p in ours), qk)
    grad_plain, = torch.autograd.grad(sum(p.float().sum() for p in plain), qk)
    assert grad_ours.dtype == torch.float32
    torch.testing.assert_close(grad_ours, grad_plain, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize('images_with_own_order', [1, 3])
def test_channel_permutation_gradient_passes_gradcheck(images_with_own_order):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    order = torch.stack([torch.randperm(7, generator=generator) for _ in range(images_with_own_order)])
    assert torch.autograd.gradcheck(lambda t: permute_channels(t, order), (tokens,))


@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_network_gradients_equal_those_of_the_plain_formulas(tiny_config, variant, monkeypatch):
    # the hand-written backward passes against autograd through F.normalize, torch.gather and the plain
    # normalisation / gate before each 1x1 convolution, float64
    torch.manual_seed(0)
    net = HINT(**tiny_config, variant=variant, recompute_min_tokens=0).double()  # every block recomputes
    image = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    backward_calls = []
    for function in (ops._TokenNormalization, ops._ChannelPermutation, ops._PointwiseConvsOfRecomputed,
                     ops._HeadProducts):
        monkeypatch.setattr(function, 'backward', staticmethod(
            lambda ctx, *grads, backward=function.backward, name=function.__name__:
            backward_calls.append(name) or backward(ctx, *grads)))

    def gradients():
        net.zero_grad()
        net(image).square().mean().backward()
        return {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}

    ours = gradients()
    # every attention block's normalisation and re-ordering, and refined's restored order, went through them
    blocks = sum(isinstance(m, HMHA) for m in net.modules())
    # official's batch shares one order, taken by re-ordering the qkv weights (no token permutation); refined's
    # two images each have their own, gathered, and refined restores the order before the intra-layer gate
    permutations = blocks * (2 if variant == 'refined' else 0)
    # two per attention (norm before qkv, cache gate before project_out), two per FFN (norm, gate)
    ffns = sum(isinstance(m, layers.GatedDconvFeedForward) for m in net.modules())
    expected = (['_ChannelPermutation'] * permutations + ['_PointwiseConvsOfRecomputed'] * 2 * (blocks + ffns)
                + ['_TokenNormalization', '_HeadProducts'] * blocks)
    assert sorted(backward_calls) == sorted(expected)

    def gather(t, order):
        return torch.gather(t, -1, order[:, None].expand(t.shape[0], t.shape[1], -1))

    monkeypatch.setattr(hmha_arch, 'normalize_tokens', lambda t: torch.nn.functional.normalize(t, dim=1))
    monkeypatch.setattr(hmha_arch, 'permute_channels', gather)
    monkeypatch.setattr(hmha_arch, 'head_products', plain_head_products)
    monkeypatch.setattr(qkcu_arch, 'permute_channels', gather)
    monkeypatch.setattr(hmha_arch, 'pointwise_convs_of_recomputed', plain_pointwise_convs)
    monkeypatch.setattr(layers, 'pointwise_convs_of_recomputed', plain_pointwise_convs)
    backward_calls.clear()
    plain = gradients()
    assert backward_calls == []
    assert ours.keys() == plain.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], plain[name], rtol=1e-10, atol=1e-12, msg=name)


def test_token_normalization_refuses_a_second_derivative():
    # its backward treats the norm as a constant: wrong second derivatives must fail loudly, not silently
    tokens = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match='no second derivative'):
        torch.autograd.grad(normalize_tokens(tokens).sum(), tokens, create_graph=True)


@pytest.mark.parametrize('recompute', [True, False])
def test_ffn_padded_hidden_width_equals_the_plain_width_forward_and_backward(recompute, monkeypatch):
    # hidden 42 computed as 48 (zero rows/columns) against 42 computed as 42, with biases, float64
    torch.manual_seed(0)
    ffn = layers.GatedDconvFeedForward(16, 2.66, bias=True).double()
    for p in ffn.parameters():  # non-zero biases: a padded channel must still contribute nothing
        torch.nn.init.normal_(p)
    norm = layers.ChannelLayerNorm(16).double()
    ffn.recompute_stretches, ffn.recompute_min_tokens = recompute, 0
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 16, 6, 5, dtype=torch.float64)
    widths, results = [], []
    gate = layers.GatedDconvFeedForward._gate
    monkeypatch.setattr(layers.GatedDconvFeedForward, '_gate',
                        lambda self, x1, x2: widths.append(x1.shape[1]) or gate(self, x1, x2))
    for multiple in (16, 1):
        ffn.hidden_multiple = multiple
        out = ffn(x, norm=norm)
        results.append((out, torch.autograd.grad(out, [x, *ffn.parameters(), *norm.parameters()], grad)))
    assert ffn.project_out.in_channels == 42 and widths[0] == 48 and widths[-1] == 42
    (padded, padded_grads), (plain, plain_grads) = results
    torch.testing.assert_close(padded, plain, rtol=1e-12, atol=1e-12)
    for a, b in zip(padded_grads, plain_grads):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_stretches_are_recomputed_only_on_maps_of_at_least_recompute_min_tokens(tiny_config, monkeypatch):
    torch.manual_seed(0)
    weights = HINT(**tiny_config).double().state_dict()
    image = torch.rand(1, 3, 16, 16, dtype=torch.float64)  # levels of 256, 64, 16 and 4 tokens
    decisions, backward_calls = [], []
    recomputes = ops.RecomputesStretches.recomputes
    monkeypatch.setattr(ops.RecomputesStretches, 'recomputes', lambda self, x: decisions.append(
        (x.shape[-2] * x.shape[-1], recomputes(self, x))) or decisions[-1][1])
    backward = ops._PointwiseConvsOfRecomputed.backward
    monkeypatch.setattr(ops._PointwiseConvsOfRecomputed, 'backward', staticmethod(
        lambda ctx, *grads: backward_calls.append(1) or backward(ctx, *grads)))

    def gradients(min_tokens):  # the same weights, built with network_g's recompute_min_tokens
        net = HINT(**tiny_config, recompute_min_tokens=min_tokens).double()
        net.load_state_dict(weights)
        decisions.clear(), backward_calls.clear()
        net(image).square().mean().backward()
        return [p.grad for p in net.parameters() if p.grad is not None]

    threshold = gradients(64)
    assert {tokens for tokens, _ in decisions} == {256, 64, 16, 4}
    assert all(recomputed == (tokens >= 64) for tokens, recomputed in decisions)
    assert len(backward_calls) == 2 * sum(recomputed for _, recomputed in decisions)  # two stretches per module
    everywhere, nowhere = gradients(0), gradients(10**9)
    assert backward_calls == []
    for a, b, c in zip(threshold, everywhere, nowhere):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_ffn_is_traced_at_its_own_hidden_width():
    # complexity counts and ONNX export see the network's own convolutions, not the padded ones
    ffn = layers.GatedDconvFeedForward(16, 2.66).eval()
    x = torch.randn(1, 16, 4, 4)
    traced = torch.jit.trace(ffn, x)
    assert ffn.computed_hidden() == 48
    graph = str(traced.graph)
    assert 'aten::_convolution' in graph and 'pad' not in graph
    torch.testing.assert_close(traced(x), ffn(x))


@pytest.mark.parametrize('variant, batch', [('official', 2), ('refined', 1)])
def test_qkv_sorted_by_reordered_weights_equals_the_gathered_tokens(variant, batch, monkeypatch):
    # where the batch shares one channel order, q, k and v come out of re-ordered convolution weights instead of
    # a gather of the (N, 3C) tokens: the same attention output, cache and gradients, float64
    torch.manual_seed(0)
    attention = HMHA(24, bias=True, variant=variant).double()
    norm = layers.ChannelLayerNorm(24).double()
    x = torch.randn(batch, 24, 6, 7, dtype=torch.float64, requires_grad=True)
    cache = torch.rand(1, 16, 16, dtype=torch.float64)
    gathers = []
    permute = hmha_arch.permute_channels
    monkeypatch.setattr(hmha_arch, 'permute_channels', lambda t, order: gathers.append(1) or permute(t, order))
    results = []
    for by_weights in (True, False):
        monkeypatch.setattr(HMHA, 'sorts_by_weights', lambda self, b, by_weights=by_weights: by_weights)
        gathers.clear()
        out, new_cache = attention(x, cache, norm=norm)
        results.append((out, new_cache, torch.autograd.grad(out.square().sum(), [x, *attention.parameters()])))
        assert len(gathers) == (0 if by_weights else 1)
    (out_w, cache_w, grads_w), (out_g, cache_g, grads_g) = results
    torch.testing.assert_close(out_w, out_g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cache_w, cache_g, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_w, grads_g):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize('variant, batch, by_weights', [('official', 3, True), ('refined', 1, True),
                                                        ('refined', 2, False)])
def test_qkv_weights_are_reordered_only_where_the_batch_shares_one_order(variant, batch, by_weights):
    assert HMHA(16, variant=variant).sorts_by_weights(batch) is by_weights
