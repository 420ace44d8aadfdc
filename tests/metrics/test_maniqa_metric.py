"""calculate_maniqa's own work: weights lookup and loading, messages, input conversion, seeded crops.

pyiqa is not installed here (see hint_plugin/metrics/maniqa_metric.py), so a small stand-in module plays pyiqa's
``create_metric``: a network whose score is the mean of the image plus a bias loaded from the weights plus one
random draw (standing for MANIQA's random crops)."""
import sys
import types

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric

from hint_plugin.metrics import maniqa_metric
from hint_plugin.metrics.maniqa_metric import MANIQA_FILES, calculate_maniqa, image_to_tensor, maniqa_weights_path


class ScoreNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):  # (1, 3, H, W) RGB in [0, 1] -> (1,)
        red_minus_blue = (x[:, 0] - x[:, 2]).mean()
        return x.mean() + red_minus_blue + self.bias + 1e-3 * torch.rand(1)


@pytest.fixture
def fake_pyiqa(monkeypatch):
    created = []

    class _Metric:
        def __init__(self, net):
            self.net = net

        def __call__(self, x):
            return self.net(x)

    def create(name, device=None, pretrained=True):
        assert pretrained is False
        created.append((name, str(device)))
        return _Metric(ScoreNet().to(device))

    monkeypatch.setitem(sys.modules, 'pyiqa', types.SimpleNamespace(create_metric=create))
    monkeypatch.setattr(maniqa_metric, '_METRICS', {})
    return created


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    with pytest.raises(FileNotFoundError, match=r'hub/pyiqa/ckpt_koniq10k\.pt .*pyiqa\'s cache'):
        maniqa_weights_path()
    with pytest.raises(FileNotFoundError, match=r'nowhere\.pth \(given as weights\).*MANIQA_PIPAL-ae6d356b\.pth'):
        maniqa_weights_path('maniqa-pipal', str(tmp_path / 'nowhere.pth'))
    with pytest.raises(ValueError, match='variant'):
        maniqa_weights_path('maniqa-spaq')
    (tmp_path / 'hub' / 'pyiqa').mkdir(parents=True)
    (tmp_path / 'hub' / 'pyiqa' / MANIQA_FILES['maniqa-kadid']).write_bytes(b'')
    assert maniqa_weights_path('maniqa-kadid').endswith('hub/pyiqa/ckpt_kadid10k.pt')


def test_missing_pyiqa_is_named(tmp_path, monkeypatch):
    weights = tmp_path / 'w.pth'
    torch.save({'params': ScoreNet().state_dict()}, weights)
    monkeypatch.setitem(sys.modules, 'pyiqa', None)  # import pyiqa raises ImportError
    monkeypatch.setattr(maniqa_metric, '_METRICS', {})
    with pytest.raises(ImportError, match=r'needs pyiqa.*pip install pyiqa==0\.1\.16'):
        calculate_maniqa(np.zeros((8, 8, 3), np.uint8), weights=str(weights), device='cpu')


def test_weights_loaded_bgr_converted_and_crops_seeded(tmp_path, fake_pyiqa):
    net = ScoreNet()
    net.bias.data.fill_(10.0)
    weights = tmp_path / 'maniqa.pth'
    torch.save({'params': {f'module.{k}': v for k, v in net.state_dict().items()}}, weights)
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # pure red: mean 1/3, red - blue 1
    opt = {'type': 'calculate_maniqa', 'weights': str(weights), 'device': 'cpu', 'better': 'higher'}
    score = calculate_metric({'img': bgr}, opt)
    assert score == pytest.approx(10 + 1 / 3 + 1, abs=2e-3)
    assert calculate_metric({'img': bgr, 'img2': bgr}, opt) == score  # same seed, same crops; img2 not read
    assert calculate_maniqa(bgr[..., ::-1], weights=str(weights), device='cpu', channel_order='rgb') == score
    assert calculate_maniqa(bgr, weights=str(weights), device='cpu', seed=1) != score
    assert fake_pyiqa == [('maniqa', 'cpu')]  # built once


def test_input_checks():
    assert image_to_tensor(np.full((2, 3, 3), 255.0)).shape == (1, 3, 2, 3)
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        image_to_tensor(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match='unknown option.*test_y_channel'):
        calculate_maniqa(np.zeros((4, 4, 3), np.uint8), test_y_channel=False)
    with pytest.raises(ValueError, match='crop_border must be 0'):
        calculate_maniqa(np.zeros((4, 4, 3), np.uint8), crop_border=4)
