"""The speed devices of hint_plugin.archs.ops against the plain PyTorch expressions they stand for, forward and
backward, alone and inside the whole network."""
import pytest
import torch
from torch import nn

from hint_plugin.archs import hmha_arch, ops, qkcu_arch
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA
from hint_plugin.archs.ops import channel_mix, normalize_tokens, permute_channels, recompute_in_backward


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


def test_recompute_in_backward_gives_the_stretch_and_its_gradients():
    torch.manual_seed(0)
    a = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)

    def stretch(x, y):
        return torch.nn.functional.gelu(x) * y

    ours, plain = recompute_in_backward(stretch, a, b), stretch(a, b)
    assert torch.equal(ours, plain)
    grad = torch.randn(2, 8, dtype=torch.float64)
    for x, y in zip(torch.autograd.grad(ours, (a, b), grad), torch.autograd.grad(plain, (a, b), grad)):
        assert torch.equal(x, y)


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


@pytest.mark.parametrize('images_with_own_order', [1, 3])
def test_channel_permutation_gradient_passes_gradcheck(images_with_own_order):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    order = torch.stack([torch.randperm(7, generator=generator) for _ in range(images_with_own_order)])
    assert torch.autograd.gradcheck(lambda t: permute_channels(t, order), (tokens,))


@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_network_gradients_equal_those_of_the_plain_formulas(tiny_config, variant, monkeypatch):
    # the hand-written backward passes against autograd through F.normalize and torch.gather, float64
    torch.manual_seed(0)
    net = HINT(**tiny_config, variant=variant).double()
    image = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    backward_calls = []
    for function in (ops._TokenNormalization, ops._ChannelPermutation):
        monkeypatch.setattr(function, 'backward', staticmethod(
            lambda ctx, grad, backward=function.backward, name=function.__name__:
            backward_calls.append(name) or backward(ctx, grad)))

    def gradients():
        net.zero_grad()
        net(image).square().mean().backward()
        return {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}

    ours = gradients()
    # every attention block's normalisation and re-ordering, and refined's restored order, went through them
    blocks = sum(isinstance(m, HMHA) for m in net.modules())
    permutations = blocks * (2 if variant == 'refined' else 1)
    assert sorted(backward_calls) == ['_ChannelPermutation'] * permutations + ['_TokenNormalization'] * blocks

    def gather(t, order):
        return torch.gather(t, -1, order[:, None].expand(t.shape[0], t.shape[1], -1))

    monkeypatch.setattr(hmha_arch, 'normalize_tokens', lambda t: torch.nn.functional.normalize(t, dim=1))
    monkeypatch.setattr(hmha_arch, 'permute_channels', gather)
    monkeypatch.setattr(qkcu_arch, 'permute_channels', gather)
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
