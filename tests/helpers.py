"""Helpers the test modules share (tests import them from here, never from one another)."""
import io
import logging
import os
import re
import runpy
import subprocess
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import cv2
import hint_plugin  # noqa: F401  (before BasicSR: the torchvision alias BasicSR's import needs)
import numpy as np
import torch
import yaml
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / 'tests' / 'fixtures'  # copies of the shared reference material (see its README)

# The intra-op threads of a fresh interpreter here (read when conftest.py first imports this module, before it sets
# one thread for the tests): what tools/*.py run with when a test starts them as commands.
FRESH_PROCESS_THREADS = torch.get_num_threads()

# A width-8 HINT: every level and both caches exist, and it runs in milliseconds.
TINY_CONFIG = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])
# For the tests that trace the whole network (torch.compile, the ONNX exporters), whose cost grows with the block
# count: each kind of block once, with every level's down- and upsampling and skips. An FFN-only block (encoder
# level 2) and two attention blocks: the latent's (8 x dim), which starts the inter-layer cache, and decoder level
# 2's (2 x dim), which takes it carried, pooled from 64 to 16 channels and then to its heads' 2, 4, 4 and 6
# (overlapping windows). 3 blocks instead of TINY_CONFIG's 8.
TRACE_CONFIG = dict(TINY_CONFIG, num_blocks=[0, 1, 0, 0], num_refinement_blocks=0)


# ------------------------------------------------------------------------------ data, option files, commands
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


@contextmanager
def fresh_basicsr_logger():
    """BasicSR's root logger as a fresh process has it (no handlers, level unset, not yet initialised), so that a
    pipeline run in-process logs to the stderr of this moment (pytest's capture) and to its own log file; the
    logger's earlier state comes back afterwards, the run's handlers closed."""
    from basicsr.utils import logger as basicsr_logger
    logger = logging.getLogger('basicsr')
    saved = (logger.handlers[:], logger.level, logger.propagate, basicsr_logger.initialized_logger.pop('basicsr', None))
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    try:
        yield logger
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers[:], level, logger.propagate, initialized = saved
        logger.setLevel(level)
        basicsr_logger.initialized_logger.pop('basicsr', None)
        if initialized is not None:
            basicsr_logger.initialized_logger['basicsr'] = initialized


def pipeline_in_process(command, argv, cwd, monkeypatch, capsys):
    """``python tools/<command>.py *argv`` (``command``: 'train' or 'test') in ``cwd``, run as its ``main`` from
    :mod:`hint_plugin.cli.pipeline` in this process (argv, working folder and a fresh BasicSR logger as the command
    has them); returns its exit status and everything it printed and logged."""
    from hint_plugin.cli.pipeline import test_main, train_main
    main = {'train': train_main, 'test': test_main}[command]
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, 'argv', [f'tools/{command}.py', *map(str, argv)])
    capsys.readouterr()
    status, message = 0, ''
    with fresh_basicsr_logger():
        try:
            main()
        except SystemExit as exit_info:  # as the interpreter would: an int is the status, anything else is printed
            if isinstance(exit_info.code, int):
                status = exit_info.code
            elif exit_info.code is not None:
                status, message = 1, f'{exit_info.code}\n'
    out, err = capsys.readouterr()
    return status, out + err + message


def tool_in_process(script, args, cwd, threads=FRESH_PROCESS_THREADS):
    """``python tools/<script> *args`` in ``cwd``, its stdout and stderr together, as the demo's ``run_tool`` runs
    it, but as ``__main__`` in this process: its argv, working folder and folder first on sys.path, a fresh BasicSR
    logger, and the intra-op threads of a fresh interpreter (``threads``); all restored afterwards. Returns its exit
    status and everything it printed and logged. For commands that other tests also start fresh."""
    path = str(REPO / 'tools' / script)
    saved = sys.argv, os.getcwd(), torch.get_num_threads()
    sys.argv = [path, *map(str, args)]
    sys.path.insert(0, os.path.dirname(path))
    os.chdir(cwd)
    torch.set_num_threads(threads)
    output, status = io.StringIO(), 0
    try:
        with fresh_basicsr_logger(), redirect_stdout(output), redirect_stderr(output):
            try:
                runpy.run_path(path, run_name='__main__')
            except SystemExit as exit_info:  # as the interpreter would: an int is the status, anything else printed
                if isinstance(exit_info.code, int):
                    status = exit_info.code
                elif exit_info.code is not None:
                    status = 1
                    print(exit_info.code, file=sys.stderr)
    finally:
        sys.argv = saved[0]
        os.chdir(saved[1])
        torch.set_num_threads(saved[2])
        sys.path.remove(os.path.dirname(path))
    return status, output.getvalue()


def run_tool_in_process(error):
    """A stand-in for tools/demo.py's ``run_tool(script, args, workdir) -> output`` that runs the tool with
    :func:`tool_in_process`: the command and its output echoed, the output returned, a failure raised as ``error``
    (the demo's ``DemoError``)."""
    def run_tool(script, args, workdir):
        print('$ python ' + ' '.join([f'tools/{script}', *map(str, args)]), flush=True)
        status, output = tool_in_process(script, args, workdir)
        sys.stdout.write(output)
        if status != 0:
            raise error(f'tools/{script} failed with exit code {status} (its output is above)')
        return output
    return run_tool


def logged_iters(text):
    """Iterations of BasicSR's MessageLogger lines, ``[epoch:  0, iter:       5, lr:(...)]``."""
    return [int(n.replace(',', '')) for n in re.findall(r'\[epoch:\s*\d+, iter:\s*([\d,]+)', text)]


# ------------------------------------------------------------------------------- models built in-process
def model_options(tmp_path, is_train=True, network=None, **train):
    """Options for ``build_model`` without BasicSR's option parser: a tiny HINT on the CPU."""
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir(exist_ok=True)
    states.mkdir(exist_ok=True)
    return {
        'name': 'robust', 'model_type': 'HINTModel', 'is_train': is_train, 'num_gpu': 0, 'dist': False,
        'rank': 0, 'world_size': 1, 'manual_seed': 0, 'datasets': {},
        'network_g': network or {'type': 'HINT', **TINY_CONFIG},
        'path': {'models': str(models), 'training_states': str(states)},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1, 'reduction': 'mean'},
                  'fft_loss_opt': {'type': 'FFTLoss', 'loss_weight': 0.1, 'reduction': 'mean'}, **train},
    }


PARSER_KEYS = ('is_train', 'dist', 'rank', 'world_size')  # what BasicSR's parser adds to an option file


def check_as_option_file(opt):
    """Check :func:`model_options`' options as the test command checks an option file when it reads it
    (:func:`~hint_plugin.utils.option_schema.check_options`: the schema the model then trusts)."""
    from hint_plugin.utils.option_schema import check_options
    options = {key: value for key, value in opt.items() if key not in PARSER_KEYS}
    options.update(datasets={'test_1': {'name': 'set', 'type': 'SingleImageDataset'}}, val={'save_img': False},
                   train={'total_iter': 100, **options['train']})
    check_options(options, is_train=False, check_paths=False)


def batch(seed=0, nan=False):
    """A batch of two random 16 x 16 pairs drawn from ``seed``; one NaN in the first lq image when ``nan``."""
    generator = torch.Generator().manual_seed(seed)
    lq, gt = torch.rand(2, 3, 16, 16, generator=generator), torch.rand(2, 3, 16, 16, generator=generator)
    if nan:
        lq[0, 0, 3, 3] = float('nan')
    return {'lq': lq, 'gt': gt}


def parameters(model):
    return {name: value.detach().clone() for name, value in model.net_g.named_parameters()}


def same(before, after):
    return all(torch.equal(before[name], after[name]) for name in before)


def train(model, iterations):
    """Steps on :func:`batch` ``(iteration)``; returns each step's log."""
    logs = []
    for iteration in iterations:
        model.feed_data(batch(iteration))
        model.optimize_parameters(iteration)
        logs.append(model.get_current_log())
    return logs


# A stand-in for the authors' HINT_arch.py: their constructor's keywords (not ours: variant, cache_init ...),
# NCHW features as theirs, and the network of this package underneath.
REFERENCE_STAND_IN = """
import torch
from hint_plugin.archs.hint_arch import HINT as _HINT


class HINT(_HINT):
    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4,
                 heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False, LayerNorm_type='WithBias',
                 dual_pixel_task=False, qv_cache=None):
        super().__init__(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, dual_pixel_task, channels_last=False)
"""
