"""End to end through BasicSR's launcher: train on CPU, kill, auto-resume, evaluate; and 2-process gloo DDP."""
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tests.helpers import REPO, TINY_CONFIG, logged_iters, paired_set, run, train_options, write_yaml

pytestmark = pytest.mark.slow


def test_train_kill_auto_resume_then_evaluate(tmp_path, tiny_data):
    opt_path = write_yaml(tmp_path / 'train.yml', train_options('e2e', tiny_data, total_iter=400, save_every=2))
    states = tmp_path / 'experiments' / 'e2e' / 'training_states'
    cmd = [sys.executable, str(REPO / 'tools' / 'train.py'), '-opt', opt_path]
    process = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not (states / '4.state').exists():
        time.sleep(0.05)
    assert process.poll() is None, f'training stopped before it could be killed:\n{process.stderr.read()[-3000:]}'
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = max(int(p.name.split('.')[0]) for p in states.glob('*.state'))
    assert killed_at >= 4

    resumed = run(cmd + ['--auto_resume', '--force_yml', f'train:total_iter={killed_at + 6}'], tmp_path)
    assert re.search(rf'Resuming training from epoch: \d+, iter: {killed_at}\.', resumed)
    iters = logged_iters(resumed)
    assert iters[0] == killed_at + 1 and iters[-1] == killed_at + 6
    assert 'End of training' in resumed
    losses = [float(v) for v in re.findall(r'l_pix: ([-\d.e+]+)', resumed)]
    assert losses and all(np.isfinite(losses))
    checkpoint = tmp_path / 'experiments' / 'e2e' / 'models' / 'net_g_latest.pth'
    assert checkpoint.exists()

    val_lq, val_gt = tiny_data['val']
    test_opt = {
        'name': 'e2e_test', 'model_type': 'HINTModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test_1': paired_set('tiny_test', val_lq, val_gt)},
        'network_g': {'type': 'HINT', **TINY_CONFIG},
        'path': {'pretrain_network_g': str(checkpoint), 'param_key_g': 'params', 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None, 'window_size': 8, 'tile': {'size': 16, 'overlap': 8},
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
                            'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}}},
    }
    tested = run([sys.executable, str(REPO / 'tools' / 'test.py'), '-opt',
                  write_yaml(tmp_path / 'test.yml', test_opt)], tmp_path)
    psnr = float(re.search(r'# psnr: ([\d.]+)', tested).group(1))
    ssim = float(re.search(r'# ssim: ([\d.]+)', tested).group(1))
    assert 5 < psnr < 60 and 0 < ssim <= 1
    saved = sorted((tmp_path / 'results' / 'e2e_test' / 'visualization' / 'tiny_test').glob('*.png'))
    assert len(saved) == 2 and cv2.imread(str(saved[0])).shape == (24, 24, 3)


def test_two_process_gloo_training_with_torchrun(tmp_path, tiny_data):
    options = train_options('ddp', tiny_data, total_iter=4, save_every=4)
    # 6 images, 2 ranks, 1 per rank: 3 full batches per epoch (BasicSR's epoch count assumes no partial batch)
    options['datasets']['train'].update(batch_size_per_gpu=1, mini_batch_sizes=[1, 1])
    opt_path = write_yaml(tmp_path / 'ddp.yml', options)
    environment = dict(os.environ, PYTHON=sys.executable, MASTER_PORT='29731', OMP_NUM_THREADS='1')
    out = run(['bash', str(REPO / 'tools' / 'dist_train.sh'), '2', opt_path], tmp_path, env=environment)
    assert 'World size (gpu number): 2' in out
    losses = [float(v) for v in re.findall(r'l_pix: ([-\d.e+]+)', out)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    models = sorted(p.name for p in (tmp_path / 'experiments' / 'ddp' / 'models').glob('*.pth'))
    assert models == ['net_g_4.pth', 'net_g_latest.pth']
    assert sorted(p.name for p in (tmp_path / 'experiments' / 'ddp' / 'training_states').iterdir()) == ['4.state']
