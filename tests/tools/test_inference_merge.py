"""hint_plugin.inference honours ``val.tile.merge`` (and ``--tile-merge``): cosine ramps or the authors' average."""
import cv2
import numpy as np
import pytest
import torch
import yaml

from hint_plugin import inference
from hint_plugin.errors import OptionsError
from hint_plugin.cli import inference as inference_tool
from hint_plugin.utils.tiling import restore


def conv_net():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 5, padding=2)  # tile borders change its output: merges differ
    return net.eval()


def test_option_file_merge_and_override(tmp_path):
    opt = tmp_path / 'test.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'HINT'}, 'path': {'pretrain_network_g': 'w.pth'},
                                   'val': {'tile': {'size': 32, 'overlap': 16, 'merge': 'average'}}}))
    assert inference.resolve_setup(opt=str(opt)).merge == 'average'
    assert inference.resolve_setup(opt=str(opt), merge='cosine').merge == 'cosine'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'HINT'}, 'path': {'pretrain_network_g': 'w.pth'},
                                   'val': {'tile': {'size': 32, 'merge': 'blend'}}}))
    with pytest.raises(OptionsError, match=r"test.yml: val.tile.merge = 'blend': expected one of 'cosine', 'average'"):
        inference.resolve_setup(opt=str(opt))


def test_average_merge_is_the_authors_grid_average():
    net, image = conv_net(), torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        averaged = restore(net, image, 8, 24, 12, merge='average')
        blended = restore(net, image, 8, 24, 12)
    out = inference.restore_tensor(net, image, tile=24, overlap=12, window_size=8, merge='average')
    torch.testing.assert_close(out, averaged)
    assert not torch.allclose(out, blended, atol=1e-4)
    torch.testing.assert_close(inference.restore_tensor(net, image, tile=24, overlap=12, window_size=8), blended)


def test_command_line_tile_merge_reaches_the_restoration(tmp_path, monkeypatch):
    net = conv_net()
    monkeypatch.setattr(inference_tool, 'load_network', lambda *args, **kwargs: net)
    config = tmp_path / 'net.yml'  # any network_g: the network itself is the stand-in above
    config.write_text(yaml.safe_dump({'network_g': {'type': 'HINT'}}))
    image = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'x.png'), image)
    outputs = {}
    for merge in ('average', 'cosine'):
        code = inference_tool.main(['-i', str(tmp_path / 'x.png'), '-o', str(tmp_path / merge), '--weights', 'w.pth',
                                    '--config', str(config), '--tile', '24', '--tile-overlap', '12',
                                    '--tile-merge', merge, '--device', 'cpu', '--no-progress'])
        assert code == 0
        outputs[merge] = cv2.imread(str(tmp_path / merge / 'x.png'))
    expected = inference.restore_array(net, image, tile=24, overlap=12, merge='average')
    np.testing.assert_array_equal(outputs['average'], expected)
    assert not np.array_equal(outputs['average'], outputs['cosine'])
