"""HINTModel's speed options for the training forward pass: ``train.amp: bf16`` and ``train.compile``."""
import pytest
import torch
from basicsr.models import build_model
from torch import nn

from hint_plugin.errors import OptionsError
from tests.helpers import TRACE_CONFIG, batch, check_as_option_file, model_options, parameters



def one_step(model, iteration=1):
    model.feed_data(batch())
    model.optimize_parameters(iteration)


def test_bf16_autocast_runs_the_forward_in_bfloat16_and_keeps_float32_weights(tmp_path):
    model = build_model(model_options(tmp_path, amp='bf16'))
    dtypes = []
    conv = next(m for m in model.net_g.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    before = parameters(model)
    one_step(model)
    assert dtypes == [torch.bfloat16]
    assert model.output.dtype == torch.float32  # the losses are computed in float32
    after = parameters(model)
    assert all(value.dtype == torch.float32 and torch.isfinite(value).all() for value in after.values())
    assert any(not torch.equal(before[name], after[name]) for name in before)
    dtypes.clear()
    model.test()  # validation and testing: the plain network in float32
    assert dtypes == [torch.float32]


@pytest.mark.parametrize('key, value, message', [
    ('amp', 'fp8', "train.amp = 'fp8': expected one of False, 'bf16', 'fp16'"),
    ('compile', 'yes', "train.compile = 'yes': expected true or false or a mapping"),
])
def test_bad_speed_options_are_named(tmp_path, key, value, message):
    check_as_option_file(model_options(tmp_path, amp='bf16', compile={'backend': 'aot_eager'}))
    with pytest.raises(OptionsError, match=message):
        check_as_option_file(model_options(tmp_path, **{key: value}))


@pytest.mark.slow  # dynamo tracing and AOT autograd of a tiny network: about 8 s
def test_compiled_training_steps_match_the_plain_ones(tmp_path):
    models, network = {}, {'type': 'HINT', **TRACE_CONFIG}  # each kind of block once
    for name, extra in (('plain', {}), ('compiled', {'compile': {'backend': 'aot_eager', 'fullgraph': True}})):
        (tmp_path / name).mkdir()
        torch.manual_seed(0)  # the same initial weights
        models[name] = build_model(model_options(tmp_path / name, network=network, **extra))
    assert models['compiled'].train_forward is not models['compiled'].net_g
    initial = parameters(models['plain'])
    try:
        for iteration in (1, 2):
            for model in models.values():
                one_step(model, iteration)
    finally:
        torch._dynamo.reset()
    expected, found = parameters(models['plain']), parameters(models['compiled'])
    assert any(not torch.equal(initial[name], expected[name]) for name in initial)
    for name in expected:
        torch.testing.assert_close(found[name], expected[name], rtol=0, atol=1e-6, msg=name)
