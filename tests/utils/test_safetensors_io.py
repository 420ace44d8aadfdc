"""Weights in .safetensors: written with the network_g in the metadata, read back by the plugin's loader."""
import argparse

import pytest
import torch

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.inference import load_network
from hint_plugin.utils.checkpoint import CheckpointError, convert_to_safetensors, load_weights, read_state_dict
from hint_plugin.utils.safetensors_io import NETWORK_KEY, read_network_config, save_safetensors


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_config):
    """A tiny HINT's weights saved as BasicSR does, ``{'params': state_dict}``, in a .pth file."""
    torch.manual_seed(0)
    net = HINT(**tiny_config, ffn_expansion_factor=1.5, bias=True)
    path = tmp_path / 'tiny.pth'
    torch.save({'params': net.state_dict()}, path)
    return path, net


def test_convert_detects_the_config_and_the_file_reads_back_equal(tmp_path, tiny_checkpoint, tiny_config):
    source, net = tiny_checkpoint
    target = tmp_path / 'tiny.safetensors'
    stored = convert_to_safetensors(source, target)
    assert read_network_config(target) == stored
    assert stored['type'] == 'HINT' and stored['dim'] == 8 and stored['bias'] is True
    assert stored['ffn_expansion_factor'] == 1.5
    state = read_state_dict(target)
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[key], value) for key, value in net.state_dict().items())

    rebuilt = HINT(**{key: value for key, value in stored.items() if key != 'type'})
    load_weights(rebuilt, target)  # strict
    image = torch.rand(1, 3, 20, 27)
    with torch.no_grad():
        restored = load_network(stored, target)(image)
        assert torch.equal(restored, load_network(stored, source)(image))
        torch.testing.assert_close(restored, net.eval()(image), rtol=0, atol=1e-6)


def test_metadata_is_optional_and_module_prefix_is_stripped(tmp_path, tiny_checkpoint):
    _, net = tiny_checkpoint
    target = tmp_path / 'bare.safetensors'
    save_safetensors({f'module.{key}': value for key, value in net.state_dict().items()}, target)
    assert read_network_config(target) is None
    assert read_state_dict(target).keys() == net.state_dict().keys()


def test_a_config_that_does_not_fit_is_refused(tmp_path, tiny_checkpoint, tiny_config):
    source, _ = tiny_checkpoint
    with pytest.raises(CheckpointError, match='does not fit the network_g'):
        convert_to_safetensors(source, tmp_path / 'x.safetensors', {'type': 'HINT', **tiny_config})
    assert not (tmp_path / 'x.safetensors').exists()


def test_pickled_objects_and_broken_files_are_refused(tmp_path, tiny_checkpoint):
    _, net = tiny_checkpoint
    pickled = tmp_path / 'pickled.pth'
    torch.save({'params': net.state_dict(), 'opt': argparse.Namespace(lr=1)}, pickled)
    with pytest.raises(CheckpointError, match='refused to load'):
        convert_to_safetensors(pickled, tmp_path / 'out.safetensors')
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}')
    with pytest.raises(CheckpointError, match='not a readable .safetensors file'):
        read_state_dict(broken)
    with pytest.raises(CheckpointError, match='not found'):
        read_state_dict(tmp_path / 'missing.safetensors')


def test_not_hint_without_a_config_is_refused(tmp_path):
    source = tmp_path / 'other.pth'
    torch.save({'conv.weight': torch.zeros(4, 3, 3, 3)}, source)
    with pytest.raises(CheckpointError, match="missing 'patch_embed.proj.weight'.*network_g of another network"):
        convert_to_safetensors(source, tmp_path / 'other.safetensors')


def test_metadata_holds_the_network_as_json(tmp_path, tiny_checkpoint):
    from safetensors import safe_open

    source, _ = tiny_checkpoint
    target = tmp_path / 'tiny.safetensors'
    convert_to_safetensors(source, target)
    with safe_open(target, framework='pt') as file:
        metadata = file.metadata()
    assert metadata['format'] == 'pt' and '"type": "HINT"' in metadata[NETWORK_KEY]
