"""fp16 training (``train.amp: fp16``) with ``torch.amp.GradScaler`` on the CPU: the scaler's skipped steps,
their agreement with the non-finite-loss guard, and an exact resume of the scaler's state."""
import pytest
import torch
from basicsr.models import build_model
from torch import nn

from hint_plugin.errors import OptionsError
from tests.helpers import batch, check_as_option_file, model_options, parameters, same, train


def fp16_model(path, **train):
    path.mkdir(exist_ok=True)
    torch.manual_seed(0)
    return build_model(model_options(path, amp='fp16', **train))


def test_fp16_runs_the_forward_in_float16_through_a_scaler(tmp_path):
    model = fp16_model(tmp_path, grad_scaler={'init_scale': 256.0})
    dtypes = []
    conv = next(m for m in model.net_g.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    before = parameters(model)
    train(model, [1])
    assert dtypes == [torch.float16] and model.output.dtype == torch.float32
    log = model.get_current_log()
    assert log['amp_skipped_steps'] == 0 and log['loss_scale'] == 256.0 and not same(before, parameters(model))
    assert all(value.dtype == torch.float32 for value in parameters(model).values())


def test_overflowing_gradients_skip_the_step_and_halve_the_scale(tmp_path):
    """A scale of 2**40 overflows float16 gradients: the step and the EMA update are skipped and counted, the
    scale halves each time; with growth_interval 1 it doubles after every good step."""
    model = fp16_model(tmp_path, ema_decay=0.9, use_grad_clip=True,
                       grad_scaler={'init_scale': 2.0 ** 40, 'growth_interval': 1})
    before, ema_before = parameters(model), model.net_g_ema.state_dict()['patch_embed.proj.weight'].clone()
    train(model, [1])
    log = model.get_current_log()
    assert log['amp_skipped_steps'] == 1 and log['loss_scale'] == 2.0 ** 39
    assert same(before, parameters(model))
    # no AdamW step taken: no state (the per-parameter loop) or a state still at step 0 (fused AdamW, the default,
    # is called with the scaler's found-inf flag and undoes its step count)
    assert all(float(state['step']) == 0 and not state['exp_avg'].any() for state in model.optimizer_g.state.values())
    assert torch.equal(ema_before, model.net_g_ema.state_dict()['patch_embed.proj.weight'])
    scales = [model.get_current_log()['loss_scale']]
    for iteration in range(2, 40):  # about 25 halvings bring 2**40 into float16's range
        train(model, [iteration])
        scales.append(model.get_current_log()['loss_scale'])
        if model.get_current_log()['amp_skipped_steps'] < iteration:
            break  # this step was taken
    assert not same(before, parameters(model)) and model.optimizer_g.state
    assert model.get_current_log()['amp_skipped_steps'] == len(scales) - 1  # all but the last were skipped
    assert scales[-1] == 2 * scales[-2]  # the good step grew the scale (growth_interval 1)
    assert all(b == a / 2 for a, b in zip(scales[:-2], scales[1:-1]))  # every skip halved it


def test_nonfinite_loss_is_the_guards_not_the_scalers(tmp_path):
    """A NaN loss is no overflow a scale could cure: the guard stops or skips it, and the scaler is untouched."""
    model = fp16_model(tmp_path, skip_nonfinite=True, grad_scaler={'init_scale': 256.0})
    before = parameters(model)
    model.feed_data(batch(1, nan=True))
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert log['skipped_steps'] == 1 and log['amp_skipped_steps'] == 0 and log['loss_scale'] == 256.0
    assert same(before, parameters(model))


@pytest.mark.parametrize('key, value, message', [
    ('grad_scaler', {'init_scale': 8.0}, r'train.grad_scaler is only used with train.amp: fp16 \(train.amp is None\)'),
])
def test_grad_scaler_needs_fp16(tmp_path, key, value, message):
    check_as_option_file(model_options(tmp_path, amp='fp16', **{key: value}))
    with pytest.raises(OptionsError, match=message):
        check_as_option_file(model_options(tmp_path, **{key: value}))


def test_unknown_grad_scaler_key_is_named(tmp_path):
    with pytest.raises(OptionsError, match='`scale`: unknown key in train.grad_scaler; did you mean `init_scale`?'):
        check_as_option_file(model_options(tmp_path, amp='fp16', grad_scaler={'scale': 8}))


def resumed_model(path, state, weights, **train):
    """A fresh model as ``--auto_resume`` makes it: the saved weights, then the training state."""
    model = fp16_model(path, **train)
    model.get_bare_model(model.net_g).load_state_dict(weights)
    model.resume_training(state)
    return model


def test_fp16_run_saved_and_resumed_equals_the_uninterrupted_run(tmp_path):
    """Scale 2**18 with growth_interval 2: the scale grows every second step until a step overflows (step 5,
    then 8 in this run), so the scaler's state matters; a resume after step 5 continues bit for bit."""
    options = dict(grad_scaler={'init_scale': 2.0 ** 18, 'growth_interval': 2}, mixing_augs={'mixup': True})
    straight = fp16_model(tmp_path / 'straight', **options)
    expected = train(straight, range(1, 11))[5:]

    interrupted = fp16_model(tmp_path / 'interrupted', **options)
    train(interrupted, range(1, 6))
    assert interrupted.amp_skipped_steps > 0 and interrupted.grad_scaler.get_scale() != 2.0 ** 18
    interrupted.save_training_state(epoch=0, current_iter=5)
    state = torch.load(tmp_path / 'interrupted' / 'training_states' / '5.state', weights_only=True)
    weights = {name: value.clone() for name, value in interrupted.net_g.state_dict().items()}
    del interrupted
    torch.manual_seed(123)  # the resumed process's generators start elsewhere: the state puts them back

    resumed = resumed_model(tmp_path / 'resumed', state, weights, **options)
    assert resumed.amp_skipped_steps == state['amp_skipped_steps'] > 0
    assert train(resumed, range(6, 11)) == expected  # losses, skipped steps and loss scale of every step
    assert straight.amp_skipped_steps > state['amp_skipped_steps']  # the resumed part skipped steps too
    assert all(torch.equal(value, parameters(resumed)[name]) for name, value in parameters(straight).items())

    state.pop('grad_scaler')  # a state without the scaler: the scale restarts at 2**18 and the run differs
    forgetful = resumed_model(tmp_path / 'forgetful', state, weights, **options)
    assert [log['loss_scale'] for log in train(forgetful, range(6, 11))] != [log['loss_scale'] for log in expected]
