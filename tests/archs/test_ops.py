"""``fast: true`` against ``fast: false``: each speed device of hint_plugin.archs.ops against the plain expression
beside its call, forward and backward, alone and in the whole network (the reference fixtures, float64)."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from hint_plugin.archs import hmha_arch, layers, ops
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA


class Recorded(TorchDispatchMode):
    """Records every aten operation that runs, and for every ``aten.cat`` whether its inputs are contiguous."""

    def __enter__(self):
        self.ops, self.cat_layouts = set(), []
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func)
        if func is torch.ops.aten.cat.default:
            self.cat_layouts.append([t.is_contiguous() for t in args[0]])
        return func(*args, **(kwargs or {}))


def custom_functions(output):
    """The names of the custom autograd Functions in the graph that computed ``output``."""
    names, seen, todo = set(), set(), [output.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            names.add(node.name())
        todo += [next_node for next_node, _ in node.next_functions]
    return names


def reference_net(fixture, fast, **options):
    net = HINT(**fixture['config'], fast=fast, **options).double()
    net.load_state_dict(fixture['params'], strict=True)
    return net


@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_fast_and_plain_give_equal_outputs_and_gradients_on_the_reference_weights(reference_fixture, variant):
    image = reference_fixture['input']
    image = torch.cat([image, image.flip(-1)])  # two images: refined's per-image orders are gathered, not weighed
    results = {}
    for fast in (True, False):
        net = reference_net(reference_fixture, fast, variant=variant, recompute_min_tokens=0)  # recompute everywhere
        out = net(image)
        out.square().mean().backward()
        results[fast] = out, {name: p.grad for name, p in net.named_parameters()}
    (fast_out, fast_grads), (plain_out, plain_grads) = results[True], results[False]
    assert (fast_out - plain_out).abs().max() <= 1e-8
    assert fast_grads.keys() == plain_grads.keys()
    for name, grad in fast_grads.items():
        assert (grad is None) == (plain_grads[name] is None), name
        if grad is not None:
            assert (grad - plain_grads[name]).abs().max() <= 1e-8, name


@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_plain_path_runs_no_speed_device(tiny_config, variant):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    seen = {}
    for fast in (False, True):
        net = HINT(**tiny_config, variant=variant, fast=fast, recompute_min_tokens=0)
        with Recorded() as recorded:
            out = net(image)
            functions = custom_functions(out)
            out.mean().backward()
        seen[fast] = functions, recorded.ops
    functions, aten = seen[False]
    assert functions == set()  # no custom autograd Function: no hand-written backward, no recomputation
    assert torch.ops.aten.index_select.default not in aten  # no re-ordered weights
    assert torch.ops.aten.constant_pad_nd.default not in aten  # no padded FFN width
    functions, aten = seen[True]
    assert functions == {'_ConvsOfRecomputedBackward', '_TokenNormalizationBackward', '_HeadProductsBackward'}
    assert torch.ops.aten.constant_pad_nd.default in aten
    assert (torch.ops.aten.index_select.default in aten) == (variant == 'official')  # refined: two orders


@pytest.mark.parametrize('variant, batch', [('official', 2), ('refined', 1), ('refined', 2)])
def test_fast_attention_equals_the_plain_attention_with_a_cache_forward_and_backward(variant, batch):
    torch.manual_seed(0)
    plain = HMHA(24, bias=True, variant=variant, fast=False).double()
    fast = HMHA(24, bias=True, variant=variant, fast=True, recompute_min_tokens=0).double()
    fast.load_state_dict(plain.state_dict(), strict=True)
    norm = layers.ChannelLayerNorm(24).double()
    x = torch.randn(batch, 24, 6, 7, dtype=torch.float64, requires_grad=True)
    cache = torch.rand(1, 16, 16, dtype=torch.float64)
    results = []
    for attention in (fast, plain):
        out, new_cache = attention(x, cache, norm=norm)
        results.append((out, new_cache, *torch.autograd.grad(out.square().sum(), [x, *attention.parameters()])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize('recompute', [0, None])
def test_fast_ffn_padded_width_equals_the_plain_ffn_forward_and_backward(recompute):
    torch.manual_seed(0)
    plain = layers.GatedDconvFeedForward(16, 2.66, bias=True, fast=False).double()  # hidden 42, computed as 48
    for p in plain.parameters():  # non-zero biases: a padded channel must still contribute nothing
        torch.nn.init.normal_(p)
    fast = layers.GatedDconvFeedForward(16, 2.66, bias=True, fast=True, recompute_min_tokens=recompute).double()
    fast.load_state_dict(plain.state_dict())
    norm = layers.ChannelLayerNorm(16).double()
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64, requires_grad=True)
    results = []
    for ffn in (fast, plain):
        out = ffn(x, norm=norm)
        results.append((out, *torch.autograd.grad(out.square().sum(), [x, *ffn.parameters(), *norm.parameters()])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_ffn_is_traced_at_its_own_hidden_width():
    # complexity counts and ONNX export see the network's own convolutions, not the padded ones
    ffn = layers.GatedDconvFeedForward(16, 2.66).eval()
    x = torch.randn(1, 16, 4, 4)
    traced = torch.jit.trace(ffn, x)
    graph = str(traced.inlined_graph)
    assert graph.count('aten::_convolution') == 3 and 'pad' not in graph
    torch.testing.assert_close(traced(x), ffn(x))


def test_stretches_are_recomputed_only_on_maps_of_at_least_recompute_min_tokens(tiny_config, monkeypatch):
    torch.manual_seed(0)
    weights = HINT(**tiny_config).double().state_dict()
    image = torch.rand(1, 3, 16, 16, dtype=torch.float64)  # levels of 256, 64, 16 and 4 tokens
    decisions, backward_calls = [], []
    recomputes = ops.recomputes
    monkeypatch.setattr(ops, 'recomputes', lambda x, tokens: decisions.append(
        (x.shape[-2] * x.shape[-1], recomputes(x, tokens))) or decisions[-1][1])
    backward = ops._ConvsOfRecomputed.backward
    monkeypatch.setattr(ops._ConvsOfRecomputed, 'backward', staticmethod(
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


@pytest.mark.parametrize('bias', [True, False])
def test_channel_mix_is_the_conv1d_forward_and_backward(bias):
    torch.manual_seed(0)
    conv = nn.Conv1d(6, 4, kernel_size=1, bias=bias).double()
    x = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)  # (B, C, L): Conv1d's own layout
    grad = torch.randn(3, 4, 5, dtype=torch.float64)
    plain = conv(x)
    ours = ops.channel_mix(conv, x.transpose(1, 2)).mT
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    inputs = [x, conv.weight] + ([conv.bias] if bias else [])
    for a, b in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def plain_convs(stretch, inputs, params, convs):
    """The expression :func:`ops.convs_of_recomputed` stands for."""
    hidden = stretch(*inputs)
    return [F.conv2d(hidden, weight, bias) for weight, bias in convs]


@pytest.mark.parametrize('bias', [True, False])
def test_convs_of_recomputed_equal_the_plain_expression_forward_and_backward(bias):
    torch.manual_seed(0)
    norm = nn.GroupNorm(1, 6).double()  # a stretch with parameters of its own
    convs = [nn.Conv2d(6, c, 1, bias=bias).double() for c in (4, 5)]
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = torch.randn(2, 6, 5, 7, dtype=torch.float64)  # an input that takes no gradient
    pairs = [(conv.weight, conv.bias) for conv in convs]
    leaves = [x, *norm.parameters(), *(t for conv in convs for t in conv.parameters())]
    grads = [torch.randn(2, c, 5, 7, dtype=torch.float64) for c in (4, 5)]
    results = []
    for device in (ops.convs_of_recomputed, plain_convs):
        outputs = device(lambda a, b: F.gelu(norm(a)) * b, (x, y), list(norm.parameters()), pairs)
        results.append(outputs + list(torch.autograd.grad(outputs, leaves, grads)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_convs_of_recomputed_keep_only_their_inputs():
    # the point of the device: the stretch's output (C_hidden channels) is not kept for the backward pass
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    weight = torch.randn(3, 16, 1, 1, requires_grad=True)
    for device, kept in ((ops.convs_of_recomputed, {(1, 4, 8, 8), (3, 16, 1, 1)}),
                         (plain_convs, {(1, 4, 8, 8), (1, 16, 8, 8), (3, 16, 1, 1)})):
        shapes = set()
        with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.add(tuple(t.shape)) or t, lambda t: t):
            device(lambda a: torch.cat([a.exp()] * 4, dim=1), (x, ), [], [(weight, None)])[0].sum().backward()
        assert shapes == kept, device.__name__


def test_convs_of_recomputed_under_bf16_autocast_follow_the_plain_expression():
    torch.manual_seed(0)
    norm = nn.LayerNorm(8)
    weight = torch.randn(6, 8, 1, 1, requires_grad=True)
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    results = []
    for device in (ops.convs_of_recomputed, plain_convs):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out, = device(lambda a: norm(a.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), (x, ), list(norm.parameters()),
                          [(weight, None)])
        results.append((out, torch.autograd.grad(out.float().square().sum(), [x, weight, norm.weight])))
    (ours, ours_grads), (plain, plain_grads) = results
    assert ours.dtype == plain.dtype == torch.bfloat16 and torch.equal(ours, plain)
    for a, b in zip(ours_grads, plain_grads):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


def test_hand_written_backward_passes_refuse_a_second_derivative():
    # they treat what they keep as constants: wrong second derivatives must fail loudly, not silently
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    out, = ops.convs_of_recomputed(torch.tanh, (x, ), [], [(torch.ones(1, 2, 1, 1, dtype=torch.float64), None)])
    with pytest.raises(RuntimeError, match='no second derivative'):
        torch.autograd.grad(out.sum(), x, create_graph=True)
    tokens = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match='no second derivative'):
        torch.autograd.grad(ops.normalize_tokens(tokens).sum(), tokens, create_graph=True)


def test_token_normalization_gradient_is_f_normalize_gradient():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 9, 6, generator=generator, dtype=torch.float64)
    tokens[1, :, 2] = 1e-14  # a channel whose norm is clamped to eps: there the gradient is g / eps
    grad = torch.randn(2, 9, 6, generator=generator, dtype=torch.float64)
    ours, = torch.autograd.grad(ops.normalize_tokens(tokens.requires_grad_()), tokens, grad)
    expected, = torch.autograd.grad(F.normalize(tokens, dim=1), tokens, grad)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(ops.normalize_tokens(tokens), F.normalize(tokens, dim=1))


def plain_head_products(qk, head_channels):
    return hmha_arch.head_products(*qk.chunk(2, dim=-1), head_channels)


def test_head_products_equal_the_plain_expression_forward_backward_and_second_derivative():
    generator = torch.Generator().manual_seed(0)
    sizes = (1, 2, 2, 3)
    # strided q | k, as in HMHA: the first 2C of (B, N, 3C) tokens
    tokens = torch.randn(2, 11, 24, generator=generator, dtype=torch.float64, requires_grad=True)
    grads = [torch.randn(2, c, c, generator=generator, dtype=torch.float64) for c in sizes]
    results = []
    for device in (ops.head_products, plain_head_products):
        products = device(tokens[..., :16], sizes)
        gradient, = torch.autograd.grad(products, tokens, grads, create_graph=True)
        second, = torch.autograd.grad((gradient * gradient).sum(), tokens)
        results.append(products + [gradient, second])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    # the point of the device: the backward pass concatenates once, row-major pieces only (autograd's own
    # concatenates the transposed per-head gradients of q, then q | k)
    def concatenations(device):
        products = device(tokens[..., :16].detach().clone().requires_grad_(), sizes)
        with Recorded() as recorded:
            torch.autograd.backward(products, grads)
        return recorded.cat_layouts

    assert concatenations(ops.head_products) == [[True] * 8]
    plain = concatenations(plain_head_products)
    assert len(plain) > 1 and not all(all(layouts) for layouts in plain)


def test_head_products_follow_bf16_autocast():
    torch.manual_seed(0)
    qk = torch.randn(1, 32, 16, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours, plain = ops.head_products(qk, (1, 2, 2, 3)), plain_head_products(qk, (1, 2, 2, 3))
    assert [p.dtype for p in ours] == [p.dtype for p in plain] == [torch.bfloat16] * 4
    grad_ours, = torch.autograd.grad(sum(p.float().sum() for p in ours), qk)
    grad_plain, = torch.autograd.grad(sum(p.float().sum() for p in plain), qk)
    assert grad_ours.dtype == torch.float32
    torch.testing.assert_close(grad_ours, grad_plain, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize('tail', ['gelu', 'mul'])
@pytest.mark.parametrize('groups', [1, 8])
def test_fused_conv_equals_the_convolution_then_its_tail(tail, groups):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 9, 7).contiguous(memory_format=torch.channels_last)
    kernel = 3 if groups > 1 else 1
    weight, bias = torch.randn(8, 8 // groups, kernel, kernel), torch.randn(8)
    other = torch.randn(2, 8, 9, 7)
    conv = F.conv2d(x, weight, bias, padding=kernel // 2, groups=groups)
    expected = F.gelu(conv) if tail == 'gelu' else conv * other
    with torch.inference_mode():
        fused = ops.fused_conv(x, weight, bias, groups, None if tail == 'gelu' else other)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


def test_convolutions_are_fused_only_in_cpu_inference_in_float32_or_bfloat16():
    x = torch.randn(1, 4, 4, 4)
    assert not ops.fuses_convolutions(x)  # gradients recorded
    with torch.no_grad():
        assert ops.fuses_convolutions(x) and not ops.fuses_convolutions(x.double())
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert ops.fuses_convolutions(x)
        with torch.autocast('cpu', dtype=torch.float16):
            assert not ops.fuses_convolutions(x)
    with torch.inference_mode():
        assert ops.fuses_convolutions(x)


def _counting_fused_conv(monkeypatch):
    calls = []
    original = ops.fused_conv
    monkeypatch.setattr(ops, 'fused_conv', lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    return calls


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_fused_inference_ffn_equals_the_plain_one(monkeypatch, dtype):
    torch.manual_seed(0)
    plain = layers.GatedDconvFeedForward(16, 2.66, bias=True, fast=False)
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.3)
    fast = layers.GatedDconvFeedForward(16, 2.66, bias=True, fast=True)
    fast.load_state_dict(plain.state_dict())
    norm = layers.ChannelLayerNorm(16)
    x = torch.randn(2, 16, 10, 6).contiguous(memory_format=torch.channels_last)
    calls = _counting_fused_conv(monkeypatch)
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=3e-2, atol=3e-2)
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        fused = fast(x, norm=norm)
        assert len(calls) == 2  # the two depthwise convolutions: gelu, then the product
        expected = plain(x, norm=norm)
    assert fused.dtype == expected.dtype
    torch.testing.assert_close(fused.float(), expected.float(), **tolerance)
