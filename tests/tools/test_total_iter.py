"""Training runs exactly total_iter iterations, also when the dataset size is not a multiple of the batch
(BasicSR 1.4.2's loop alone stops after iteration 5 of 8 with 3 images and batch 2, and after 7 of 12 on resume)."""
import re

import cv2
import numpy as np
import pytest
import yaml
from basicsr.utils.options import ordered_yaml

from conftest import TINY_CONFIG
from tests.helpers import pipeline_in_process

pytestmark = pytest.mark.slow


def options(data, total_iter):
    lq, gt = str(data / 'lq'), str(data / 'gt')
    return {
        'name': 'exact_total_iter', 'model_type': 'HINTModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': {
            'name': 'three', 'type': 'CheckedPairedImageDataset', 'dataroot_lq': lq, 'dataroot_gt': gt,
            'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}, 'gt_size': 16, 'use_hflip': True,
            'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1,
            'prefetch_mode': None}},
        'network_g': {'type': 'HINT', **TINY_CONFIG},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'total_iter': total_iter, 'warmup_iter': -1,
                  'optim_g': {'type': 'Adam', 'lr': 1e-4},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1, 'reduction': 'mean'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 4, 'use_tb_logger': False},
    }


def train(tmp_path, total_iter, monkeypatch, capsys, *flags):
    """``python tools/train.py -opt <file> *flags`` through its main in this process (tests/helpers.pipeline_in_process;
    the command's fresh start is covered by the end-to-end tests); the iterations it logged."""
    option_file = tmp_path / f'train_{total_iter}.yml'
    option_file.write_text(yaml.dump(options(tmp_path / 'data', total_iter), Dumper=ordered_yaml()[1]))
    status, log = pipeline_in_process('train', ['-opt', option_file, *flags], tmp_path, monkeypatch, capsys)
    assert status == 0, log[-4000:]
    return [int(i) for i in re.findall(r'iter:\s*(\d+),', log)]


def test_three_images_batch_two_run_every_iteration_and_resume_to_the_new_total(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    for side in ('lq', 'gt'):
        (tmp_path / 'data' / side).mkdir(parents=True)
    for name in ('a', 'b', 'c'):
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / 'data' / 'gt' / f'{name}.png'), image)
        cv2.imwrite(str(tmp_path / 'data' / 'lq' / f'{name}.png'), image // 2)

    assert train(tmp_path, 8, monkeypatch, capsys) == list(range(1, 9))
    states = tmp_path / 'experiments' / 'exact_total_iter' / 'training_states'
    assert sorted(p.name for p in states.iterdir()) == ['4.state', '8.state']
    assert train(tmp_path, 12, monkeypatch, capsys, '--auto_resume') == list(range(9, 13))
    assert (states / '12.state').is_file()
