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
import yaml
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from conftest import REPO, TINY_CONFIG

pytestmark = pytest.mark.slow


def make_paired_lmdbs(root, name, count, size, seed):
    """Smooth random gt images and their noisy lq versions as BasicSR LMDBs; returns (lq.lmdb, gt.lmdb)."""
    rng = np.random.default_rng(seed)
    paths = {}
    for kind in ('gt', 'lq'):
        (root / name / kind).mkdir(parents=True)
    keys = [f'{i:03d}' for i in range(count)]
    for key in keys:
        gt = cv2.resize(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        lq = gt + rng.normal(0, 20, gt.shape)
        cv2.imwrite(str(root / name / 'gt' / f'{key}.png'), np.clip(gt, 0, 255).astype(np.uint8))
        cv2.imwrite(str(root / name / 'lq' / f'{key}.png'), np.clip(lq, 0, 255).astype(np.uint8))
    for kind in ('gt', 'lq'):
        paths[kind] = str(root / name / f'{kind}.lmdb')
        make_lmdb_from_imgs(str(root / name / kind), paths[kind], [f'{k}.png' for k in keys], keys,
                            map_size=1 << 24)
    return paths['lq'], paths['gt']


def paired_set(name, lq, gt, **extra):
    return dict(name=name, type='CheckedPairedImageDataset', dataroot_lq=lq, dataroot_gt=gt, filename_tmpl='{}',
                io_backend={'type': 'lmdb'}, **extra)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    return {'train': make_paired_lmdbs(root, 'train', 6, 32, 0), 'val': make_paired_lmdbs(root, 'val', 2, 24, 1)}


def train_options(name, data, total_iter, save_every):
    lq, gt = data['train']
    val_lq, val_gt = data['val']
    return {
        'name': name, 'model_type': 'HINTModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': paired_set('tiny_train', lq, gt, use_hflip=True, use_rot=True, gt_size=16,
                                mini_batch_sizes=[2, 1], iters=[3, 1000], gt_sizes=[16, 8],
                                num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1,
                                prefetch_mode=None),
            'val': paired_set('tiny_val', val_lq, val_gt),
        },
        'network_g': {'type': 'HINT', **TINY_CONFIG},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'total_iter': total_iter, 'warmup_iter': -1, 'use_grad_clip': True,
            'optim_g': {'type': 'AdamW', 'lr': 3e-4, 'weight_decay': 1e-4, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'CosineAnnealingRestartCyclicLR', 'periods': [4, 1000],
                          'restart_weights': [1, 1], 'eta_mins': [3e-4, 1e-6]},
            'mixing_augs': {'mixup': True, 'mixup_beta': 1.2, 'use_identity': True},
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1, 'reduction': 'mean'},
            'fft_loss_opt': {'type': 'FFTLoss', 'loss_weight': 0.1, 'reduction': 'mean'},
        },
        'val': {'val_freq': 4, 'save_img': False, 'window_size': 8, 'metrics': {
            'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
            'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_every, 'use_tb_logger': False,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def write_yaml(path, options):
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return str(path)


def run(cmd, cwd, timeout=600, env=None):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f'{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}'
    return result.stdout + result.stderr


def logged_iters(text):
    """Iterations of BasicSR's MessageLogger lines, ``[epoch:  0, iter:       5, lr:(...)]``."""
    return [int(n.replace(',', '')) for n in re.findall(r'\[epoch:\s*\d+, iter:\s*([\d,]+)', text)]


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
