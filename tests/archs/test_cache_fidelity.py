"""The inter-layer cache as the authors trained it: the update's rounding and where a call's cache starts.

The authors' HINT keeps its final cache on the module, so each call after the first starts from the previous
call's cache; their torch 1.12 truncated tensor ``//`` toward zero. ``tests/fixtures/
hint_reference_sequence_small.pt`` holds three calls of their code on one module for both roundings.
"""
import pytest
import torch

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA

LATENT_MODULATORS = [f'latent.0.attn.inter_modulator{i}.' for i in range(1, 5)]


def reference_net(fixture, **options):
    net = HINT(**fixture['config'], **options).double().eval()
    net.load_state_dict(fixture['params'], strict=True)
    return net


def max_difference(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize('fast', [True, False])
@pytest.mark.parametrize('rounding', ['trunc', 'floor'])
def test_carry_reproduces_the_reference_call_sequence_and_its_cache(reference_sequence, rounding, fast):
    net = reference_net(reference_sequence, cache_rounding=rounding, cache_init='carry', fast=fast)
    outputs, caches = reference_sequence[f'outputs_{rounding}'], reference_sequence[f'final_cache_{rounding}']
    with torch.no_grad():
        for x, expected, cache in zip(reference_sequence['inputs'], outputs, caches):
            assert max_difference(net(x), expected) <= 1e-8
            assert net.carried_cache.shape == cache.shape and max_difference(net.carried_cache, cache) <= 1e-8


def test_the_two_roundings_are_told_apart_by_the_fixture(reference_sequence):
    # otherwise the test above could not catch the wrong rounding
    assert max_difference(reference_sequence['outputs_trunc'][2], reference_sequence['outputs_floor'][2]) > 1e-4
    net = reference_net(reference_sequence, cache_rounding='floor', cache_init='carry')
    with torch.no_grad():
        last = [net(x) for x in reference_sequence['inputs']][-1]
    assert max_difference(last, reference_sequence['outputs_trunc'][2]) > 1e-4


@pytest.mark.parametrize('fast', [True, False])
def test_default_official_reproduces_every_reference_call_after_the_first(reference_sequence, fast):
    net = reference_net(reference_sequence, fast=fast)  # official, cache_rounding trunc, cache_init zeros
    assert (net.cache_init, net.latent[0].attn.qkcu.cache_rounding) == ('zeros', 'trunc')
    with torch.no_grad():
        outputs = [net(x) for x in reference_sequence['inputs']]
    for call in (1, 2):
        assert max_difference(outputs[call], reference_sequence['outputs_trunc'][call]) <= 1e-8
    assert max_difference(outputs[0], reference_sequence['outputs_trunc'][0]) > 1e-3  # the first started from none
    assert net.carried_cache is None  # stateless


@pytest.mark.parametrize('fast', [True, False])
def test_none_reproduces_the_first_call_only(reference_sequence, fast):
    net = reference_net(reference_sequence, cache_rounding='floor', cache_init='none', fast=fast)
    with torch.no_grad():
        outputs = [net(x) for x in reference_sequence['inputs']]
    assert max_difference(outputs[0], reference_sequence['outputs_floor'][0]) <= 1e-8
    assert max_difference(outputs[1], reference_sequence['outputs_floor'][1]) > 1e-3


def test_reset_cache_makes_the_next_call_a_first_call(reference_sequence):
    net = reference_net(reference_sequence, cache_rounding='floor', cache_init='carry')
    first, second = reference_sequence['inputs'][:2]
    with torch.no_grad():
        net(first)
        net(second)
        assert net.carried_cache is not None
        net.reset_cache()
        assert net.carried_cache is None
        assert max_difference(net(first), reference_sequence['outputs_floor'][0]) <= 1e-8


@pytest.mark.parametrize('cache_init', ['zeros', 'none'])
def test_stateless_modes_give_the_same_output_twice(tiny_config, cache_init):
    torch.manual_seed(0)
    net = HINT(**tiny_config, cache_init=cache_init).eval()
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    assert net.carried_cache is None


def _latent_modulator_gradients(net, x):
    net.zero_grad(set_to_none=True)
    net(x).square().mean().backward()
    return [p.grad for name, p in net.named_parameters() if any(name.startswith(m) for m in LATENT_MODULATORS)]


@pytest.mark.parametrize('variant, cache_init, unused', [
    ('official', 'zeros', False), ('official', 'carry', True), ('official', 'none', True),
    ('refined', 'zeros', False), ('refined', 'none', True)])
def test_first_attention_block_modulators_train_when_a_cache_starts_the_call(tiny_config, variant, cache_init, unused):
    torch.manual_seed(0)
    net = HINT(**tiny_config, variant=variant, cache_init=cache_init).train()
    assert net.has_unused_parameters is unused
    x = torch.rand(1, 3, 16, 16)
    first = _latent_modulator_gradients(net, x)
    assert len(first) == 4 * 4  # four heads: conv_width and gatingConv, weight and bias each
    if cache_init == 'zeros':
        assert all(g is not None and g.abs().sum() > 0 for g in first)
    else:  # no cache on the first call
        assert all(g is None for g in first)
    later = _latent_modulator_gradients(net, x)
    assert all((g is not None and g.abs().sum() > 0) == (cache_init != 'none') for g in later)


def test_carried_cache_is_detached_and_batch_averaged(tiny_config):
    net = HINT(**tiny_config, cache_rounding='floor', cache_init='carry').train()
    net(torch.rand(3, 3, 16, 16)).mean().backward()
    assert net.carried_cache.shape == (1, 16, 16) and not net.carried_cache.requires_grad


@pytest.mark.parametrize('options, words', [
    (dict(variant='refined', cache_init='carry'), 'carry is not available for variant'),
    (dict(variant='refined', cache_rounding='trunc'), 'cache_rounding only applies to the official'),
    (dict(cache_rounding='round'), 'cache_rounding must be one of'),
    (dict(cache_init='previous'), 'cache_init must be one of')])
def test_impossible_cache_options_are_refused_by_name(tiny_config, options, words):
    with pytest.raises(ValueError, match=words):
        HINT(**tiny_config, **options)


def test_carry_cannot_be_exported(tiny_config, monkeypatch):
    net = HINT(**tiny_config, cache_init='carry').eval()
    x = torch.rand(1, 3, 16, 16)
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    with torch.no_grad(), pytest.raises(RuntimeError, match='export with cache_init: zeros'):
        net(x)  # even before a cache is carried: the exported graph would silently be a first call


def test_standalone_hmha_carries_its_own_cache():
    torch.manual_seed(0)
    hmha = HMHA(dim=16, cache_init='carry', cache_rounding='floor').eval()
    x = torch.rand(1, 16, 6, 6)
    with torch.no_grad():
        first, cache = hmha(x)
        assert torch.equal(hmha.carried_cache, cache)
        second, _ = hmha(x)
        hmha.reset_cache()
        again, _ = hmha(x)
    assert torch.equal(first, again) and not torch.equal(first, second)


def test_refined_starts_from_zeros_by_default_and_stays_batch_independent(tiny_config):
    torch.manual_seed(0)
    net = HINT(**tiny_config, variant='refined').eval()
    assert net.cache_init == 'zeros' and not net.has_unused_parameters
    images = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        together = net(images)
        alone = torch.cat([net(image[None]) for image in images])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
