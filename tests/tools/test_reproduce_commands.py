"""docs/reproduce.md's evaluation command runs: a tiny HINT trained for a few steps on generated low-light pairs,
evaluated by ``tools/test.py -opt options/test/HINT_LOLv2_Real.yml`` with the paper's protocol (the authors' tile
average, calculate_psnr_lol / calculate_ssim_lol on the float output), the data and network overridden."""
import re

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network

from conftest import REPO, TINY_CONFIG
from tests.helpers import pipeline_in_process

TINY = {'type': 'HINT', **TINY_CONFIG}


def tiny_trained_checkpoint(path, pairs):
    """A tiny HINT after 3 Adam steps on ``pairs`` (``(low, normal)`` uint8 HWC BGR), saved under 'params'."""
    torch.manual_seed(0)
    net = build_network(dict(TINY))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    low = torch.stack([torch.from_numpy(lq[..., ::-1] / 255.).permute(2, 0, 1).float() for lq, _ in pairs])
    normal = torch.stack([torch.from_numpy(gt[..., ::-1] / 255.).permute(2, 0, 1).float() for _, gt in pairs])
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.l1_loss(net(low), normal)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    torch.save({'params': net.state_dict()}, path)
    return losses


@pytest.mark.slow
def test_lolv2_real_evaluation_command_on_a_briefly_trained_model(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    pairs = []
    for folder in ('low', 'normal'):
        (tmp_path / folder).mkdir()
    for index in range(2):
        normal = rng.integers(60, 200, (32, 40, 3), dtype=np.uint8)
        low = (normal * 0.2).astype(np.uint8)
        cv2.imwrite(str(tmp_path / 'normal' / f'{index}.png'), normal)
        cv2.imwrite(str(tmp_path / 'low' / f'{index}.png'), low)
        pairs.append((low, normal))
    losses = tiny_trained_checkpoint(tmp_path / 'tiny.pth', pairs)
    assert losses[-1] < losses[0]
    overrides = [f'path:pretrain_network_g={tmp_path / "tiny.pth"}',
                 'datasets:test_1:io_backend:type=disk', f'datasets:test_1:dataroot_lq={tmp_path / "low"}',
                 f'datasets:test_1:dataroot_gt={tmp_path / "normal"}', 'num_gpu=0', 'val:tile:size=24',
                 'val:tile:overlap=20', *(f'network_g:{key}={value}' for key, value in TINY_CONFIG.items())]
    # tools/test.py through its main in this process (tests/helpers.pipeline_in_process; the command's fresh start
    # is covered by the end-to-end tests), in tmp_path: results/ lands there
    status, output = pipeline_in_process('test', ['-opt', REPO / 'options/test/HINT_LOLv2_Real.yml', '--force_yml',
                                                  *overrides], tmp_path, monkeypatch, capsys)
    assert status == 0, output[-3000:]
    psnr = re.search(r'# psnr: ([0-9.]+)', output)
    ssim = re.search(r'# ssim: ([0-9.]+)', output)
    assert psnr and ssim, output[-3000:]
    assert 0 < float(psnr.group(1)) < 100 and 0 < float(ssim.group(1)) <= 1
    assert len(list((tmp_path / 'results').rglob('*.png'))) == 2
