"""spandrel (the released package) loads HINT checkpoints saved by this package and restores like the plugin."""
import pytest
import torch
from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

import hint_plugin.spandrel  # noqa: F401  (adds HINT to spandrel's registry)
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.inference import load_network, restore_tensor
from studies.precision_table import ChannelOrders, psnr
from hint_plugin.utils.checkpoint import convert_to_safetensors

CONFIG = dict(dim=8, num_blocks=[1, 2, 1, 1], num_refinement_blocks=1, ffn_expansion_factor=2.0, bias=True)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A tiny HINT saved as BasicSR does (.pth, under params_ema) and converted to .safetensors."""
    root = tmp_path_factory.mktemp('spandrel')
    torch.manual_seed(0)
    net = HINT(**CONFIG)
    torch.save({'params_ema': net.state_dict(), 'params': net.state_dict()}, root / 'tiny.pth')
    convert_to_safetensors(root / 'tiny.pth', root / 'tiny.safetensors')
    return root


def photo(height, width):
    from skimage import data
    crop = data.astronaut()[200:200 + height, 180:180 + width]
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize('name', ['tiny.pth', 'tiny.safetensors'])
def test_spandrel_restores_like_the_plugin(checkpoints, name):
    model = ModelLoader().load_from_file(checkpoints / name)
    assert isinstance(model, ImageModelDescriptor) and model.architecture.id == 'HINT'
    assert model.purpose == 'Restoration' and model.scale == 1
    assert (model.input_channels, model.output_channels) == (3, 3)
    assert model.size_requirements.none  # HINT pads to a multiple of 8 itself
    plugin = load_network({'type': 'HINT', **CONFIG}, checkpoints / name)
    for height, width in ((40, 48), (29, 37)):
        image = photo(height, width)
        expected = restore_tensor(plugin, image).clamp(0, 1)
        restored = model(image)
        assert restored.shape == image.shape
        torch.testing.assert_close(restored, expected, rtol=0, atol=1e-5)


def test_half_precisions_that_the_descriptor_claims_stay_close(checkpoints):
    """The flags' check on the tiny model: float32's channel orders replayed, the arithmetic's error alone."""
    model = ModelLoader().load_from_file(checkpoints / 'tiny.safetensors')
    image = photo(48, 48)
    recorder = ChannelOrders()
    with recorder.recording():
        reference = model(image)
    for dtype, supported, floor in ((torch.bfloat16, model.supports_bfloat16, 40),
                                    (torch.float16, model.supports_half, 55)):
        assert supported
        model.to(dtype)
        with recorder.replaying():
            output = model(image.to(dtype))
        model.float()
        assert output.dtype == dtype and torch.isfinite(output).all()
        assert psnr(output, reference) > floor


def test_other_state_dicts_are_not_taken_for_hint(checkpoints):
    state = ModelLoader().load_state_dict_from_file(checkpoints / 'tiny.pth')
    restormer_like = {key.replace('.attn.intra_modulator', '.attn.other'): value for key, value in state.items()}
    with pytest.raises(UnsupportedModelError):
        ModelLoader().load_from_state_dict(restormer_like)
    with pytest.raises(UnsupportedModelError):
        ModelLoader().load_from_state_dict({'conv.weight': torch.zeros(4, 3, 3, 3)})
