"""HINT, HMHA and QKCU: exactness against the reference, layout, shapes, determinism, gradients, errors."""
import json

import pytest
import torch
from basicsr.archs import build_network

from conftest import FIXTURES
from tests.helpers import TRACE_CONFIG
from hint_plugin.archs import ops
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA, channel_correlation, mean_channel_correlation
from hint_plugin.archs.layers import GatedDconvFeedForward
from hint_plugin.archs.qkcu_arch import QKCU, VARIANTS, cache_update
from hint_plugin.errors import OptionsError


@pytest.mark.parametrize('fast', [True, False])
def test_official_variant_reproduces_reference_output_in_float64(reference_fixture, fast):
    net = HINT(**reference_fixture['config'], variant='official', cache_init='none', cache_rounding='floor', fast=fast)
    net = net.double().eval()
    net.load_state_dict(reference_fixture['params'], strict=True)
    with torch.no_grad():
        out = net(reference_fixture['input'])
    assert out.dtype == torch.float64
    assert (out - reference_fixture['output']).abs().max().item() <= 1e-8


def test_default_config_matches_released_checkpoint_layout():
    layout = json.loads((FIXTURES / 'hint_default_state_dict.json').read_text())
    net = HINT(**layout['config'])
    ours = [[key, list(value.shape)] for key, value in net.state_dict().items()]
    assert ours == layout['state_dict']
    assert sum(p.numel() for p in net.parameters()) == layout['total_params'] == 24_873_812


@pytest.mark.parametrize('key', ['params', 'params_ema'])
def test_basicsr_checkpoint_loads_strictly_without_renaming(tmp_path, tiny_config, key):
    source = HINT(**tiny_config)
    path = tmp_path / 'net_g_latest.pth'
    torch.save({key: source.state_dict()}, path)
    target = HINT(**tiny_config)
    target.load_state_dict(torch.load(path, weights_only=True)[key], strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_registry_builds_all_three_modules(tiny_config):
    net = build_network({'type': 'HINT', **tiny_config})
    assert isinstance(net, HINT)
    hmha = build_network({'type': 'HMHA', 'dim': 16})
    out, cache = hmha(torch.rand(2, 16, 5, 7))
    assert out.shape == (2, 16, 5, 7) and cache.shape == (1, 16, 16)
    qkcu = build_network({'type': 'QKCU', 'dim': 16})
    assert isinstance(qkcu, QKCU) and not isinstance(qkcu, HMHA)


def test_qkcu_standalone_shapes_and_cache_threading():
    qkcu = QKCU(dim=16, variant='refined')
    sizes = qkcu.head_channels
    assert sizes == [2, 4, 4, 6]
    maps = [torch.softmax(torch.rand(3, c, c), -1) for c in sizes]
    values = [torch.rand(3, 10, c) for c in sizes]  # tokens: (B, N, c_i)
    out, cache = qkcu(maps, values, torch.rand(3, 10, 16))
    assert out.shape == (3, 10, 16) and cache.shape == (3, 16, 16)
    out2, cache2 = qkcu(maps, values, torch.rand(3, 10, 16), cache=torch.rand(3, 32, 32))
    assert cache2.shape == (3, 16, 16) and not cache2.requires_grad


def test_hmha_output_changes_with_an_incoming_cache():
    torch.manual_seed(0)
    hmha = HMHA(dim=16)
    x = torch.rand(1, 16, 6, 6)
    without, first_cache = hmha(x)
    with_cache, _ = hmha(x, cache=torch.rand(1, 32, 32))
    assert not torch.allclose(without, with_cache)
    assert first_cache.shape == (1, 16, 16)


@pytest.mark.parametrize('size', [(1, 1), (7, 13), (8, 8), (33, 17), (20, 41)])
def test_any_input_size_round_trips(tiny_config, size):
    net = HINT(**tiny_config).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = net(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_forward_is_stateless_and_deterministic(tiny_config):
    torch.manual_seed(0)
    net = HINT(**tiny_config).eval()
    x, other = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        first = net(x)
        net(other)  # the reference would carry this call's cache into the next one
        second = net(x)
    assert torch.equal(first, second)


@pytest.mark.parametrize('cache_init', ['zeros', 'none'])
def test_gradients_reach_every_parameter_that_takes_part(tiny_config, cache_init):
    torch.manual_seed(0)
    net = HINT(**tiny_config, cache_init=cache_init)
    net(torch.rand(2, 3, 16, 16)).square().mean().backward()
    no_grad = sorted(name for name, p in net.named_parameters() if p.grad is None)
    # without a starting cache the first attention block's inter-layer modulators take no part
    expected = sorted(name for name, _ in net.named_parameters()
                      if cache_init == 'none' and name.startswith('latent.0.attn.inter_modulator'))
    assert no_grad == expected
    # and every parameter that does get a gradient gets a non-zero one somewhere
    assert all(p.grad.abs().sum() > 0 for name, p in net.named_parameters() if p.grad is not None)


def test_dual_pixel_task_builds_and_runs():
    net = HINT(inp_channels=6, out_channels=3, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
               dual_pixel_task=True)
    assert 'skip_conv.weight' in net.state_dict()
    with torch.no_grad():
        assert net(torch.rand(1, 6, 12, 12)).shape == (1, 3, 12, 12)


@pytest.mark.parametrize('kwargs, message', [
    (dict(dim=18), 'dim must be a multiple of 4'),
    (dict(dim=0), 'dim must be an integer >= 4'),
    (dict(num_blocks=[1, 1, 1]), 'num_blocks must be a list of 4'),
    (dict(num_blocks=[1, -1, 1, 1]), r'num_blocks\[1\]'),
    (dict(variant='paper'), 'variant must be one of'),
    (dict(LayerNorm_type='Batch'), 'LayerNorm_type must be one of'),
    (dict(heads=[1, 2]), 'heads must be a list of 4'),
    (dict(bias='no'), 'bias must be true or false'),
    (dict(out_channels=1), 'out_channels'),
    (dict(cache_momentum=1.5), 'cache_momentum'),
    (dict(head_ratios=(1, 2, 2, 4)), 'cannot be split into heads'),
    (dict(head_ratios=[0, 1, 1, 1]), r'head_ratios\[0\] must be an integer >= 1'),
    (dict(head_ratios=[-1, 2, 2, 3]), r'head_ratios\[0\] must be an integer >= 1'),
    (dict(fast='yes'), 'fast must be true or false'),
])
def test_bad_constructor_arguments_raise_clear_errors(tiny_config, kwargs, message):
    with pytest.raises(ValueError, match=message):
        HINT(**{**tiny_config, **kwargs})


@pytest.mark.parametrize('shape', [(3, 16, 16), (1, 4, 16, 16), (1, 1, 16, 16), (1, 1, 3, 16, 16)])
def test_bad_inputs_raise_clear_errors(tiny_config, shape):
    net = HINT(**tiny_config)
    with pytest.raises(ValueError, match=r'HINT expects a \(B, 3, H, W\) tensor'):
        net(torch.rand(*shape))


@pytest.mark.parametrize('variant, independent', [('refined', True), ('official', False)])
def test_only_the_refined_variant_is_independent_of_the_rest_of_its_batch(tiny_config, variant, independent):
    """refined: per-image statistics (<= 1e-5); official: batch-mean statistics couple the batch, as released."""
    torch.manual_seed(0)
    net = HINT(**tiny_config, variant=variant).eval()
    batch = torch.rand(3, 3, 24, 32)
    with torch.no_grad():
        together = net(batch)
        alone = torch.cat([net(image[None]) for image in batch])
    assert ((together - alone).abs().max().item() <= 1e-5) == independent


def test_variants_share_checkpoints_but_compute_different_functions(tiny_config):
    official = HINT(**tiny_config, variant='official')
    refined = HINT(**tiny_config, variant='refined', cache_momentum=0.8)
    refined.load_state_dict(official.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(official(x), refined(x))


def test_refined_cache_is_alive_where_the_official_floor_division_kills_it():
    torch.manual_seed(0)
    maps = [torch.softmax(torch.rand(1, c, c), -1) for c in (2, 4, 4, 6)]
    official_cache = cache_update(maps, [2, 4, 4, 6], VARIANTS['official'], 'floor')
    refined_cache = cache_update(maps, [2, 4, 4, 6], VARIANTS['refined'], None)
    assert torch.count_nonzero(official_cache) == 0  # softmax maps below 1: floor(a * c_i / C) is 0
    # each head's row-stochastic map, resized to 16x16 and weighed by c_i / 16, adds about 1 to every row sum
    assert torch.allclose(refined_cache.sum(-1), torch.full((1, 16), 4.0), atol=0.01)


@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_only_refined_undoes_the_channel_order_before_the_intra_cache(variant):
    """QKCU's output written out from its definition: heads ``v_i A_i^T`` side by side, in sorted order; refined
    moves them (and the q + k features) back to the original channel order before the intra-layer gate."""
    torch.manual_seed(0)
    qkcu = QKCU(16, variant=variant)
    sizes = [2, 4, 4, 6]
    maps = [torch.softmax(torch.randn(2, c, c), -1) for c in sizes]
    values = [torch.randn(2, 5, c) for c in sizes]
    qk_cache = torch.randn(2, 5, 16)
    order = torch.stack([torch.randperm(16), torch.randperm(16)])
    out, _ = qkcu(maps, values, qk_cache, None, order)

    heads = torch.cat([v @ a.transpose(1, 2) for a, v in zip(maps, values)], dim=-1)
    if variant == 'refined':
        inverse = torch.argsort(order, dim=1)
        heads = torch.stack([h[:, i] for h, i in zip(heads, inverse)])
        qk_cache = torch.stack([t[:, i] for t, i in zip(qk_cache, inverse)])
    assert torch.allclose(out, heads + qkcu.intra_modulator(heads, qk_cache), atol=1e-6)


@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_activation_checkpointing_gives_the_same_gradients(tiny_config, variant):
    torch.manual_seed(0)
    plain = HINT(**tiny_config, variant=variant)
    checkpointed = HINT(**tiny_config, variant=variant, use_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 16, 16)
    for net in (plain, checkpointed):
        net(x).square().mean().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_whole_block_checkpointing_does_not_recompute_the_stretches_inside_again(tiny_config, monkeypatch):
    calls = []
    recomputed = ops.convs_of_recomputed
    monkeypatch.setattr(ops, 'convs_of_recomputed', lambda *args: calls.append(1) or recomputed(*args))
    x = torch.rand(1, 3, 16, 16)
    counts = {}
    for use_checkpoint in (False, True):
        calls.clear()
        net = HINT(**tiny_config, use_checkpoint=use_checkpoint, recompute_min_tokens=0)  # at any size
        net(x).mean().backward()
        counts[use_checkpoint] = len(calls)
    # two stretches per FFN and per attention without checkpoints, none inside a checkpointed block
    modules = sum(isinstance(m, (GatedDconvFeedForward, HMHA)) for m in net.modules())
    assert counts == {False: 2 * modules, True: 0}


def test_recompute_min_tokens_reaches_every_block_and_is_checked(tiny_config):
    net = HINT(**tiny_config, recompute_min_tokens=4096)
    modules = [m for m in net.modules() if isinstance(m, (HMHA, GatedDconvFeedForward))]
    assert modules and all(m.recompute_min_tokens == 4096 for m in modules)
    assert all(m.recompute_min_tokens == 128 * 128 for m in HINT(**tiny_config).modules()
               if isinstance(m, (HMHA, GatedDconvFeedForward)))
    for bad in (-1, 2.5, True, '4096'):
        with pytest.raises(OptionsError, match='recompute_min_tokens must be an integer >= 0'):
            HINT(**tiny_config, recompute_min_tokens=bad)


def test_channel_correlation_is_torch_corrcoef_per_image():
    generator = torch.Generator().manual_seed(0)
    for batch, tokens, channels in [(1, 2, 8), (3, 7, 16), (2, 200, 64)]:
        x = torch.rand(batch, tokens, channels, generator=generator, dtype=torch.float64)
        expected = torch.stack([torch.corrcoef(sample.T) for sample in x])
        torch.testing.assert_close(channel_correlation(x), expected, rtol=0, atol=1e-12)
    one_token = torch.rand(2, 1, 4, generator=generator)
    assert channel_correlation(one_token).isnan().all()  # 0 / 0, as torch.corrcoef gives


def test_mean_channel_correlation_is_the_row_mean_of_the_correlation_matrix():
    generator = torch.Generator().manual_seed(0)
    for batch, tokens, channels in [(1, 2, 8), (3, 7, 16), (2, 200, 64)]:
        x = torch.rand(batch, tokens, channels, generator=generator, dtype=torch.float64) * 3 + 5  # far from 0
        torch.testing.assert_close(mean_channel_correlation(x), channel_correlation(x).mean(dim=2), rtol=0,
                                   atol=1e-12)
    x = torch.randn(2, 4096, 96, generator=generator)  # float32: the same channel order
    expected = channel_correlation(x).mean(dim=2).sort(dim=1, descending=True).indices
    assert torch.equal(mean_channel_correlation(x).sort(dim=1, descending=True).indices, expected)
    assert mean_channel_correlation(torch.rand(2, 1, 4, generator=generator)).isnan().all()


@pytest.mark.slow  # dynamo tracing and AOT autograd: about 8 s per variant
@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_network_traces_whole_for_torch_compile(variant):
    # fullgraph: no graph break anywhere (data-dependent ops, Python on tensors), checkpointing included
    torch.manual_seed(0)
    net = HINT(**TRACE_CONFIG, variant=variant, use_checkpoint=True)  # each kind of block once
    image = torch.rand(2, 3, 20, 28)
    compiled = torch.compile(net, backend='aot_eager', fullgraph=True)
    try:
        out = compiled(image)
        out.mean().backward()
        torch.testing.assert_close(out, net(image), rtol=0, atol=1e-5)
    finally:
        torch._dynamo.reset()
