"""HINT's configuration detected from state dicts: released layout, random round trips, non-HINT dicts."""
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hint_plugin.errors import HINTError, NotHINTStateDictError
from hint_plugin.utils.detection import detect_hint_config
from hint_plugin.archs.hint_arch import HINT

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures'


def released_state_dict():
    """The released models' state dict as meta tensors (names and shapes of the fixture, no data)."""
    layout = json.loads((FIXTURES / 'hint_default_state_dict.json').read_text())
    return layout, {name: torch.empty(shape, device='meta') for name, shape in layout['state_dict']}


def test_released_layout_gives_the_released_configuration():
    layout, state = released_state_dict()
    config = detect_hint_config({'params': state})
    expected = {key: value for key, value in layout['config'].items() if key != 'heads'}
    assert config == {**expected, 'head_ratios': (1, 2, 2, 3)}
    with torch.device('meta'):
        net = HINT(**config)
    net.load_state_dict(state, strict=True, assign=True)
    assert sum(p.numel() for p in net.parameters()) == layout['total_params']


def configurations():
    """Random HINT configurations small enough to build in milliseconds."""
    def build(dim, blocks, refinement, factor, bias, norm, dual, extra_out, ratios, variant):
        inp = 6 if dual else blocks[3] % 3 + 1
        return dict(inp_channels=inp, out_channels=(inp - 3 + extra_out) if dual else inp, dim=dim,
                    num_blocks=[blocks[0], blocks[1], blocks[2], 8], num_refinement_blocks=refinement,
                    ffn_expansion_factor=factor, bias=bias, LayerNorm_type=norm, dual_pixel_task=dual,
                    head_ratios=ratios, variant=variant)

    return st.builds(
        build, st.sampled_from([4, 8, 12]), st.lists(st.integers(0, 2), min_size=4, max_size=4),
        st.integers(0, 2), st.floats(0.3, 4.0, allow_nan=False), st.booleans(),
        st.sampled_from(['WithBias', 'BiasFree']), st.booleans(), st.integers(0, 1),
        st.sampled_from([(1, 2, 2, 3), (2, 4, 4, 6), (1, 1), (1, 1, 2)]), st.sampled_from(['official', 'refined']))


def block_widths(config):
    """The widths of the levels that have blocks (so FFNs whose hidden width the weights store)."""
    dim, (first, second, third, _), refinement = config['dim'], config['num_blocks'], config['num_refinement_blocks']
    present = {dim: first, 2 * dim: first + second + refinement, 4 * dim: third, 8 * dim: second}
    return [width for width, count in present.items() if count]


def reduced(ratios):
    divisor = ratios[0]
    for ratio in ratios:
        while ratio % divisor:
            divisor, ratio = ratio % divisor, divisor
    return tuple(r // divisor for r in ratios)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=configurations(), wrapper=st.sampled_from(['bare', 'params', 'params_ema', 'module']))
def test_detection_round_trips_random_configurations(config, wrapper):
    state = HINT(**config).state_dict()
    stored = {'bare': state, 'params': {'params': state}, 'params_ema': {'params_ema': state, 'iter': 3},
              'module': {f'module.{key}': value for key, value in state.items()}}[wrapper]
    detected = detect_hint_config(stored)

    has_attention = config['num_blocks'][:3] != [0, 0, 0] or config['num_refinement_blocks'] > 0
    for key in ('inp_channels', 'out_channels', 'dim', 'num_refinement_blocks', 'dual_pixel_task'):
        assert detected[key] == config[key], key
    assert detected['num_blocks'][:3] == config['num_blocks'][:3]
    if has_attention:  # otherwise there is no block at all, so no FFN, LayerNorm or heads to read
        assert detected['LayerNorm_type'] == config['LayerNorm_type']
        assert detected['head_ratios'] == reduced(config['head_ratios'])
        for width in block_widths(config):  # the FFN widths of the levels that have blocks
            assert int(width * detected['ffn_expansion_factor']) == int(width * config['ffn_expansion_factor'])
    assert detected['bias'] == config['bias']
    HINT(**detected).load_state_dict(state, strict=True)


def test_expansion_factor_prefers_released_value_and_else_a_short_decimal():
    state = HINT(dim=8, num_blocks=[1, 1, 1, 8], num_refinement_blocks=1, ffn_expansion_factor=2.67).state_dict()
    assert detect_hint_config(state)['ffn_expansion_factor'] == 2.66  # int(w * 2.67) == int(w * 2.66), w = 8 .. 64
    state = HINT(dim=8, num_blocks=[1, 1, 1, 8], num_refinement_blocks=1, ffn_expansion_factor=1.5).state_dict()
    assert detect_hint_config(state)['ffn_expansion_factor'] == 1.5


@pytest.fixture
def tiny_state(tiny_config):
    return HINT(**tiny_config).state_dict()


@pytest.mark.parametrize('edit, message', [
    (lambda s: {}, "missing 'patch_embed.proj.weight'"),
    (lambda s: {'conv1.weight': torch.zeros(8, 3, 3, 3), 'fc.weight': torch.zeros(10, 8)},
     "missing 'patch_embed.proj.weight'"),
    (lambda s: {k: v for k, v in s.items() if 'intra_modulator' not in k},
     "missing 'latent.0.attn.intra_modulator.down.weight'"),
    (lambda s: {k: v for k, v in s.items() if not k.startswith('up3_2')}, "missing 'up3_2.body.0.weight'"),
    (lambda s: {k: v for k, v in s.items() if not k.startswith('latent.')},
     'latent has 0 blocks and encoder_level2 1'),
    (lambda s: {**s, 'encoder_level1.0.attn.temperature': torch.ones(4, 1, 1)},
     'encoder_level1.0 has attention weights'),
    (lambda s: {**s, 'output.weight': torch.zeros(3, 8, 3, 3)}, 'output.weight takes 8 channels'),
    (lambda s: {**s, 'latent.0.ffn.project_out.weight': torch.zeros(64, 7, 1, 1),
                'latent.0.ffn.project_in.weight': torch.zeros(14, 64, 1, 1)}, 'no ffn_expansion_factor'),
])
def test_not_hint_gets_one_clear_plugin_error(tiny_state, edit, message):
    with pytest.raises(NotHINTStateDictError, match=message) as raised:
        detect_hint_config(edit(tiny_state))
    assert isinstance(raised.value, HINTError) and isinstance(raised.value, ValueError)
