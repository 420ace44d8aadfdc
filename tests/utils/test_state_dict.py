"""unwrap_state_dict: one rule for BasicSR's layouts and DDP's ``module.`` prefix, used by the checkpoint loader,
HINT's configuration detection and the spandrel architecture alike."""
import pytest
import torch

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.errors import CheckpointError, HINTError, StateDictError
from hint_plugin.spandrel import HINTArch
from hint_plugin.utils.checkpoint import read_state_dict
from hint_plugin.utils.detection import detect_hint_config
from hint_plugin.utils.state_dict import unwrap_state_dict

EMA, PLAIN = {'w': torch.ones(1)}, {'w': torch.zeros(1)}


def test_basicsr_layouts_with_param_key_first_then_ema_then_params():
    assert unwrap_state_dict(EMA) == EMA and unwrap_state_dict(EMA) is not EMA
    both = {'params': PLAIN, 'params_ema': EMA, 'iter': 3}
    assert unwrap_state_dict(both) == EMA
    assert unwrap_state_dict(both, param_key='params') == PLAIN
    assert unwrap_state_dict({'params': PLAIN}, param_key='params_ema') == PLAIN
    assert unwrap_state_dict({'net': PLAIN, 'params_ema': EMA}, param_key='net') == PLAIN


def test_module_prefix_goes_only_when_every_key_has_it():
    wrapped = {'module.conv.weight': torch.ones(1), 'module.conv.bias': torch.ones(1)}
    assert unwrap_state_dict(wrapped).keys() == {'conv.weight', 'conv.bias'}
    submodule = {'module.weight': torch.ones(1), 'head.weight': torch.ones(1)}  # a layer named "module"
    assert unwrap_state_dict(submodule).keys() == submodule.keys()


@pytest.mark.parametrize('checkpoint, message', [
    ([1, 2], 'got list'),
    ({'params': 'not a tensor'}, "'params' holds a str"),
    ({'params': {'w': torch.ones(1), 'step': 3}}, "'step' holds a int"),
])
def test_anything_else_is_a_named_plugin_error(checkpoint, message):
    with pytest.raises(StateDictError, match=message) as raised:
        unwrap_state_dict(checkpoint)
    assert isinstance(raised.value, HINTError) and isinstance(raised.value, ValueError)


def test_loader_detection_and_spandrel_read_a_ddp_checkpoint_alike(tmp_path, tiny_config):
    state = HINT(**tiny_config).state_dict()
    checkpoint = {'params_ema': {f'module.{key}': value for key, value in state.items()}}
    torch.save(checkpoint, tmp_path / 'ddp.pth')
    assert read_state_dict(tmp_path / 'ddp.pth').keys() == state.keys()
    assert detect_hint_config(checkpoint)['dim'] == tiny_config['dim']
    model = HINTArch().load(checkpoint).model  # spandrel's own loader unwraps first; a direct call may not
    loaded = model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[key], state[key]) for key in state)
    torch.save({'params': {'w': torch.ones(1), 'step': 3}}, tmp_path / 'odd.pth')
    with pytest.raises(CheckpointError, match="odd.pth: expected a state dict of tensors.*'step' holds a int"):
        read_state_dict(tmp_path / 'odd.pth')
