"""AdamW through the model: fused unless ``train.optim_g`` chooses (``fused: false``, ``foreach: true``); fused and
multi-tensor AdamW, plain or under the fp16 scaler, step as the per-parameter loop does and resume."""
import pytest
import torch
from basicsr.models import build_model

from hint_plugin.utils.optimizers import build_optimizer, optimizer_keywords
from tests.helpers import model_options, parameters, train


def adamw_model(path, implementation, **train_options):
    path.mkdir(exist_ok=True)
    options = model_options(path, use_grad_clip=True, **train_options)
    options['train']['optim_g'].update(implementation)
    torch.manual_seed(0)
    return build_model(options)


@pytest.mark.parametrize('amp', [None, 'fp16'])
@pytest.mark.parametrize('implementation', [{'fused': True}, {'foreach': True}])
def test_fused_and_foreach_adamw_step_as_the_loop_does_and_resume(tmp_path, implementation, amp):
    """One step agrees to float32 rounding (later steps drift apart as any rounding difference does under
    fp16's coarse weights); the saved optimizer state loads into a fresh fused/foreach model and steps on."""
    loop = adamw_model(tmp_path / 'loop', {'foreach': False}, amp=amp)
    other = adamw_model(tmp_path / 'other', implementation, amp=amp)
    assert all(other.optimizer_g.defaults[key] is value for key, value in implementation.items())
    initial = parameters(loop)
    train(loop, [1])
    train(other, [1])
    expected, found = parameters(loop), parameters(other)
    assert any(not torch.equal(initial[name], expected[name]) for name in initial)
    for name in expected:
        torch.testing.assert_close(found[name], expected[name], rtol=0, atol=1e-6, msg=name)

    other.save_training_state(epoch=0, current_iter=1)
    state = torch.load(tmp_path / 'other' / 'training_states' / '1.state', weights_only=True)
    resumed = adamw_model(tmp_path / 'resumed', implementation, amp=amp)
    resumed.get_bare_model(resumed.net_g).load_state_dict(other.net_g.state_dict())
    resumed.resume_training(state)
    train(other, [2])
    train(resumed, [2])
    assert all(torch.equal(value, parameters(resumed)[name]) for name, value in parameters(other).items())


@pytest.mark.parametrize('implementation, fused, foreach', [({}, True, None), ({'fused': False}, False, None),
                                                           ({'foreach': True}, None, True)])
def test_adamw_is_fused_unless_the_options_choose(tmp_path, implementation, fused, foreach):
    model = adamw_model(tmp_path, implementation)
    assert model.optimizer_g.defaults['fused'] is fused and model.optimizer_g.defaults['foreach'] is foreach


def test_fused_only_for_adam_and_adamw_on_fused_devices():
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    assert optimizer_keywords('AdamW', parameters, {'lr': 1}) == {'lr': 1, 'fused': True}
    assert optimizer_keywords('Adam', [{'params': parameters}], {}) == {'fused': True}
    assert optimizer_keywords('SGD', parameters, {}) == {}
    assert optimizer_keywords('AdamW', [torch.nn.Parameter(torch.zeros(2, device='meta'))], {}) == {}
    assert build_optimizer('AdamW', iter(parameters), 1e-3).defaults['fused'] is True
