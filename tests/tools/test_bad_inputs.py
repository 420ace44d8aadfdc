"""Bad inputs, each named: option files, checkpoints with NaN or infinity, damaged LMDBs, training states of
another experiment or damaged, 16-bit training images. Every case asserts the exception (or exit status) and the
words of the message; all run in-process (the commands as their ``main``: each tool's fresh start is covered by the
end-to-end tests that run it)."""
import copy
import logging
import os

import cv2
import numpy as np
import pytest
import torch
from basicsr.models import build_model
from basicsr.utils.registry import MODEL_REGISTRY

from hint_plugin import compat
from hint_plugin.data.checked_paired_image_dataset import CheckedPairedImageDataset
from hint_plugin.data.gaussian_noise_dataset import GaussianNoiseDataset
from hint_plugin.data.lmdb_check import LmdbError, verify_lmdb
from hint_plugin.models.hint_model import HINTModel
from hint_plugin.utils.checkpoint import CheckpointError, read_state_dict
from hint_plugin.utils.option_schema import Key, check_options, register_dataset_keys
from hint_plugin.utils.options import OptionsError
from hint_plugin.utils.resume import ResumeError, read_resume_state
from hint_plugin.cli import create_lmdb
from hint_plugin.cli.pipeline import check_command_line
from tests.helpers import (REPO, TINY_CONFIG, make_paired_lmdbs, model_options, pipeline_in_process, train_options,
                           write_yaml)

DATA = {'train': ('lq.lmdb', 'gt.lmdb'), 'val': ('val_lq.lmdb', 'val_gt.lmdb')}


def options(**changes):
    """The end-to-end test's training options, with ``{'train.total_iter': value}``-style changes
    (``None`` deletes the key)."""
    result = copy.deepcopy(train_options('bad', DATA, total_iter=8, save_every=4))
    for dotted, value in changes.items():
        *parents, last = dotted.split('.')
        section = result
        for key in parents:
            section = section[key]
        if value is None:
            section.pop(last, None)
        else:
            section[last] = value
    return result


def test_the_base_options_and_every_recipe_of_the_repository_pass():
    check_options(options(), is_train=True, check_paths=False)
    from hint_plugin.utils.options import read_options
    for path in sorted((REPO / 'options').glob('*/*.yml')):
        check_options(read_options(path), is_train='train' in path.parent.name or path.stem.endswith('denoise'),
                      source=str(path), check_paths=False)


# ------------------------------------------------------------------------------------------- option files
OPTION_CASES = {  # id: (changes, words of the message)
    'typo-total_iters': ({'train.total_iter': None, 'train.total_iters': 8},
                         '`total_iters`: unknown key in train; did you mean `total_iter`?'),
    'negative-total_iter': ({'train.total_iter': -5}, 'train.total_iter = -5: expected an integer >= 1'),
    'missing-total_iter': ({'train.total_iter': None}, 'train.total_iter is missing: expected an integer >= 1'),
    'string-total_iter': ({'train.total_iter': '8k'}, "train.total_iter = '8k': expected an integer >= 1"),
    'zero-batch': ({'datasets.train.batch_size_per_gpu': 0},
                   'datasets.train.batch_size_per_gpu = 0: expected an integer >= 1'),
    'float-batch': ({'datasets.train.batch_size_per_gpu': 2.5},
                    'datasets.train.batch_size_per_gpu = 2.5: expected an integer >= 1'),
    'missing-batch': ({'datasets.train.batch_size_per_gpu': None}, 'datasets.train.batch_size_per_gpu is missing'),
    'negative-workers': ({'datasets.train.num_worker_per_gpu': -1},
                         'datasets.train.num_worker_per_gpu = -1: expected an integer >= 0'),
    'mini-batches-above-loader-batch': ({'datasets.train.mini_batch_sizes': [8, 6], 'datasets.train.iters': [3, 5]},
                                        r'mini_batch_sizes = [8, 6]: each must be <= batch_size_per_gpu (2)'),
    'singular-mini_batch_size': ({'datasets.train.mini_batch_size': 2},
                                 '`mini_batch_size`: unknown key in datasets.train; did you mean `mini_batch_sizes`?'),
    'zero-progressive-size': ({'datasets.train.gt_sizes': [16, 0]},
                              'datasets.train.gt_sizes = [16, 0]: expected a list of integers >= 1'),
    'negative-progressive-iters': ({'datasets.train.iters': [-3, 1000]},
                                   'datasets.train.iters = [-3, 1000]: expected a list of integers >= 1'),
    'progressive-lengths-differ': ({'datasets.train.iters': [3, 5, 1000]}, 'must have one length'),
    'progressive-list-alone': ({'datasets.train.iters': None, 'datasets.train.gt_sizes': None},
                               'mini_batch_sizes given without iters, gt_sizes'),
    'progressive-size-above-gt_size': ({'datasets.train.gt_sizes': [32, 8]},
                                       'gt_sizes = [32, 8]: each must be <= gt_size (16)'),
    'missing-gt_size': ({'datasets.train.gt_size': None}, 'datasets.train.gt_size is missing'),
    'flip-as-string': ({'datasets.train.use_hflip': 'yes'}, "datasets.train.use_hflip = 'yes': expected true or false"),
    'unknown-backend': ({'datasets.train.io_backend': {'type': 'lmbd'}},
                        "datasets.train.io_backend.type = 'lmbd': expected one of 'disk', 'lmdb', 'memcached'"),
    'dataset-typo': ({'datasets.train.use_flip': True}, '`use_flip`: unknown key in datasets.train; did you mean'),
    'no-training-set': ({'datasets.train': None}, 'datasets.train is missing'),
    'loss-key-typo': ({'train.pixel_opt.los_weight': 1},
                      '`los_weight`: unknown key in train.pixel_opt; did you mean `loss_weight`?'),
    'unregistered-loss': ({'train.pixel_opt.type': 'L1'}, "type = 'L1' in a loss section: not registered"),
    'negative-loss-weight': ({'train.fft_loss_opt.loss_weight': -1}, 'train.fft_loss_opt.loss_weight = -1'),
    'no-loss': ({'train.pixel_opt': None, 'train.fft_loss_opt': None}, 'train: no loss given'),
    'optimiser-not-in-torch': ({'train.optim_g.type': 'Adamw'}, "train.optim_g.type = 'Adamw': not a torch.optim"),
    'optimiser-key-typo': ({'train.optim_g.weight_decy': 0.1},
                           '`weight_decy`: unknown key in train.optim_g; did you mean `weight_decay`?'),
    'zero-learning-rate-as-string': ({'train.optim_g.lr': '3e-4'}, "train.optim_g.lr = '3e-4': expected a number"),
    'fused-as-string': ({'train.optim_g.fused': 'false'}, "train.optim_g.fused = 'false': expected true or false"),
    'fused-and-foreach': ({'train.optim_g.fused': True, 'train.optim_g.foreach': True},
                          'fused and foreach are two implementations; give at most one of them true'),
    'unknown-scheduler': ({'train.scheduler.type': 'Cosine'}, "train.scheduler.type = 'Cosine': expected one of"),
    'scheduler-weights-per-period': ({'train.scheduler.restart_weights': [1]},
                                     'restart_weights = [1]: expected one per period (2 periods)'),
    'scheduler-shorter-than-training': ({'train.scheduler.periods': [2, 3]},
                                        'periods = [2, 3] sum to 5, fewer than train.total_iter (8)'),
    'ema-above-one': ({'train.ema_decay': 1.5}, 'train.ema_decay = 1.5: expected a number in [0, 1]'),
    'mixup-as-string': ({'train.mixing_augs.mixup': 'true'}, "train.mixing_augs.mixup = 'true': expected true or"),
    'zero-val_freq': ({'val.val_freq': 0}, 'val.val_freq = 0: expected an integer >= 1'),
    'unknown-metric': ({'val.metrics.psnr.type': 'psnr'}, "type = 'psnr' is not a registered metric"),
    'metric-key-typo': ({'val.metrics.psnr.crop_boarder': 0},
                        '`crop_boarder`: unknown key in val.metrics.psnr; did you mean `crop_border`?'),
    'logger-missing-freq': ({'logger.print_freq': None}, 'logger.print_freq is missing'),
    'wandb-without-tensorboard': ({'logger.wandb.project': 'p'}, 'needs logger.use_tb_logger: true'),
    'port-out-of-range': ({'dist_params.port': 70000}, 'dist_params.port = 70000: expected an integer in [1, 65535]'),
    'top-level-typo': ({'manual_sed': 1}, '`manual_sed`: unknown key in the top level; did you mean `manual_seed`?'),
    'unregistered-model': ({'model_type': 'HintModel'}, "model_type = 'HintModel': not a registered model"),
    'num_gpu-word': ({'num_gpu': 'all'}, "num_gpu = 'all': expected an integer >= 0 or auto"),
    'network-option': ({'network_g.dim': 18}, 'network_g.dim'),
    'datasets-not-mapping': ({'datasets': ['train']}, "datasets = ['train']: expected a mapping"),
}


@pytest.mark.parametrize('changes, words', OPTION_CASES.values(), ids=OPTION_CASES.keys())
def test_bad_option_is_named(changes, words):
    with pytest.raises(OptionsError) as error:
        check_options(options(**changes), is_train=True, source='bad.yml', check_paths=False)
    assert str(error.value).startswith('bad.yml: ') and words in str(error.value), str(error.value)


def make_data_folders(root):
    for folders in DATA.values():
        for folder in folders:
            (root / folder).mkdir()


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(OptionsError, match=r"bad.yml: datasets.train.dataroot_gt = 'gt.lmdb': no such folder"):
        check_options(options(), is_train=True, source='bad.yml')


def test_missing_pretrained_weights_are_named(tmp_path, monkeypatch):
    make_data_folders(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OptionsError, match=r"path.pretrain_network_g = 'nowhere.pth': no such file"):
        check_options(options(**{'path.pretrain_network_g': 'nowhere.pth'}), is_train=True, check_paths=True)


def test_test_options_need_val_and_a_dataset():
    test = options(**{'train': None, 'logger': None})
    test['datasets'] = {'test_1': test['datasets']['val']}
    check_options(test, is_train=False, check_paths=False)
    with pytest.raises(OptionsError, match='val is missing'):
        check_options({**test, 'val': None}, is_train=False, check_paths=False)
    with pytest.raises(OptionsError, match='datasets is empty'):
        check_options({**test, 'datasets': {}}, is_train=False, check_paths=False)


def test_authors_dialect_validates_and_dataset_types_can_be_registered(monkeypatch):
    monkeypatch.setitem(MODEL_REGISTRY._obj_map, 'ImageCleanModel', HINTModel)  # registered by another module
    # every HINTModel training key is the authors' model's too
    authors = options(model_type='ImageCleanModel', **{'train.accum_iter': 2, 'train.amp': 'bf16'})
    authors['datasets']['train'] = dict(
        name='t', type='Dataset_GaussianDenoising', sigma_type='random', sigma_range=[0, 50], in_ch=3,
        dataroot_gt='gt', dataroot_lq='none', geometric_augs=True, filename_tmpl='{}', io_backend={'type': 'disk'},
        use_shuffle=True, num_worker_per_gpu=0, batch_size_per_gpu=2, mini_batch_sizes=[2, 1], iters=[3, 5],
        gt_size=16, gt_sizes=[8, 32], dataset_enlarge_ratio=1, prefetch_mode=None)
    authors['val'].update(rgb2bgr=True, use_image=False, max_minibatch=8)
    check_options(authors, is_train=True, check_paths=False)  # its loop skips the 32-pixel stage, with a warning
    with pytest.raises(OptionsError, match=r'gt_sizes = \[8, 32\]: each must be <= gt_size \(16\)'):
        check_options(dict(authors, model_type='HINTModel', val=options()['val']), is_train=True, check_paths=False)
    authors['datasets']['train']['sigma_type'] = 'uniform'
    with pytest.raises(OptionsError, match="sigma_type = 'uniform': expected one of 'constant', 'random', 'choice'"):
        check_options(authors, is_train=True, check_paths=False)
    monkeypatch.setitem(MODEL_REGISTRY._obj_map, 'NewDataset', None)
    with_new = options(**{'datasets.val.type': 'NewSet', 'datasets.val.radius': 3})
    check_options(with_new, is_train=True, check_paths=False)  # a type without a table: its own keys pass
    register_dataset_keys('NewSet', {name: Key() for name in ('dataroot_lq', 'dataroot_gt', 'filename_tmpl',
                                                              'io_backend')})
    try:
        with pytest.raises(OptionsError, match='`radius`: unknown key in datasets.val'):
            check_options(with_new, is_train=True, check_paths=False)
    finally:
        from hint_plugin.utils.option_schema import DATASET_KEYS
        DATASET_KEYS.pop('NewSet')


# --------------------------------------------------------------------------------------------- command line
@pytest.mark.parametrize('content, extra, words', [
    ('', [], 'holds no options'),
    ('- a\n- b\n', [], 'holds no options'),
    ('name: [unclosed\n', [], 'is not a YAML option file'),
    (None, ['--force_yml', 'train:total_iters=3'], '`total_iters`: unknown key in train; did you mean `total_iter`?'),
    (None, ['--force_yml', 'trian:total_iter=3'], 'has no key trian'),
    (None, ['--launcher', 'pytorch'], '--launcher pytorch: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set'),
], ids=['empty-file', 'list-file', 'broken-yaml', 'force_yml-unknown-key', 'force_yml-unknown-section',
        'launcher-outside-torchrun'])
def test_command_line_problems_exit_2_naming_the_file(tmp_path, capsys, monkeypatch, content, extra, words):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / 'opt.yml'
    if content is None:
        write_yaml(path, options())
        monkeypatch.setattr('hint_plugin.utils.startup_checks.check_options',  # their data is not on disk
                            lambda options, is_train, source: check_options(options, is_train, source=source,
                                                                            check_paths=False))
    else:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        check_command_line(True, ['-opt', str(path), *extra])
    message = capsys.readouterr().err
    assert exit_info.value.code == 2 and message.startswith('train: error: ') and words in message, message


def test_train_command_refuses_a_typo_before_building_anything(tmp_path, monkeypatch, capsys):
    make_data_folders(tmp_path)
    path = write_yaml(tmp_path / 'typo.yml', options(**{'train.total_iter': None, 'train.total_iters': 8}))
    status, output = pipeline_in_process('train', ['-opt', path], tmp_path, monkeypatch, capsys)
    assert status == 2, output[-3000:]
    assert f'train: error: {path}: `total_iters`: unknown key in train; did you mean `total_iter`?' in output
    assert not (tmp_path / 'experiments').exists()


# ---------------------------------------------------------------------------------------- non-finite weights
def tiny_state(bad=None, where='encoder_level1.0.ffn.dwconv.weight'):
    from hint_plugin.archs import HINT
    state = HINT(**TINY_CONFIG).state_dict()
    if bad is not None:
        state[where] = torch.full_like(state[where], bad)
    return state


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')], ids=['nan', 'inf', '-inf'])
@pytest.mark.parametrize('layout', ['params', 'params_ema', 'bare'])
def test_nonfinite_weights_are_refused_naming_file_and_tensor(tmp_path, bad, layout):
    path = tmp_path / 'net.pth'
    state = tiny_state(bad)
    torch.save(state if layout == 'bare' else {layout: state}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: tensor 'encoder_level1.0.ffn.dwconv.weight' holds NaN or "
                                              'infinite values; refusing to load'):
        read_state_dict(path)


def test_pretrain_with_nan_weights_is_refused_before_training(tmp_path):
    path = tmp_path / 'nan.pth'
    torch.save({'params': tiny_state(float('nan'))}, path)
    opt = {'name': 'x', 'model_type': 'HINTModel', 'is_train': False, 'num_gpu': 0, 'dist': False, 'rank': 0,
           'world_size': 1, 'network_g': {'type': 'HINT', **TINY_CONFIG}, 'path': {'pretrain_network_g': str(path)}}
    with pytest.raises(CheckpointError, match='nan.pth: tensor .* holds NaN'):
        build_model(opt)


def test_inference_cli_exits_2_on_nan_weights(tmp_path, capsys):
    from hint_plugin.cli import inference
    weights, network = tmp_path / 'nan.pth', tmp_path / 'net.yml'
    torch.save({'params': tiny_state(float('nan'))}, weights)
    write_yaml(network, {'network_g': {'type': 'HINT', **TINY_CONFIG}})
    cv2.imwrite(str(tmp_path / 'in.png'), np.zeros((8, 8, 3), np.uint8))
    status = inference.main(['--weights', str(weights), '--config', str(network), '--param-key', 'params',
                             '-i', str(tmp_path / 'in.png'), '-o', str(tmp_path / 'out'), '--no-progress'])
    assert status == 2 and 'holds NaN or infinite values' in capsys.readouterr().err
    assert not (tmp_path / 'out' / 'in.png').exists()


@pytest.fixture(scope='module')
def lmdbs(tmp_path_factory):
    return make_paired_lmdbs(tmp_path_factory.mktemp('lmdbs'), 'set', 2, 16, 0)


def test_test_command_exits_1_on_nan_weights_naming_them(tmp_path, lmdbs, monkeypatch, capsys):
    weights = tmp_path / 'nan.pth'
    torch.save({'params': tiny_state(float('nan'))}, weights)
    lq, gt = lmdbs
    test = {'name': 'nan_test', 'model_type': 'HINTModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
            'datasets': {'test_1': {'name': 'set', 'type': 'CheckedPairedImageDataset', 'dataroot_lq': lq,
                                    'dataroot_gt': gt, 'io_backend': {'type': 'lmdb'}}},
            'network_g': {'type': 'HINT', **TINY_CONFIG}, 'path': {'pretrain_network_g': str(weights)},
            'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}}
    path = write_yaml(tmp_path / 'test.yml', test)
    status, output = pipeline_in_process('test', ['-opt', path], tmp_path, monkeypatch, capsys)
    assert status == 1, output[-3000:]
    assert f'test: error: {weights}: tensor ' in output and 'Traceback' not in output
    assert '# psnr:' not in output  # no metric logged from black images


# ---------------------------------------------------------------------------------------------------- LMDBs
def damaged_copy(tmp_path, source, how):
    """A copy of the LMDB ``source``, damaged ``how``."""
    import shutil
    target = tmp_path / f'{how}.lmdb'
    shutil.copytree(source, target)
    if how == 'truncated':
        os.truncate(target / 'data.mdb', 20_000)
    elif how == 'missing':
        shutil.rmtree(target)
    return str(target)


@pytest.mark.parametrize('how, words', [('truncated', "is damaged: its data file .*data.mdb has 20000 bytes"),
                                        ('missing', "missing.lmdb' (not found|does not exist)")])
@pytest.mark.parametrize('dataset', ['paired', 'noise'])
def test_damaged_lmdb_is_named_when_the_dataset_is_built(tmp_path, lmdbs, how, words, dataset):
    big = make_paired_lmdbs(tmp_path, 'big', 6, 64, 1)[1]  # > 20 kB, so that truncating cuts into the data
    bad = damaged_copy(tmp_path, big, how)
    backend = {'type': 'lmdb'}
    with pytest.raises((LmdbError, FileNotFoundError), match=words) as error:
        if dataset == 'paired':
            CheckedPairedImageDataset({'name': 'd', 'phase': 'val', 'scale': 1, 'dataroot_lq': lmdbs[0],
                                       'dataroot_gt': bad, 'io_backend': backend})
        else:
            GaussianNoiseDataset({'phase': 'val', 'dataroot_gt': bad, 'io_backend': backend, 'sigma_test': 25})
    if how == 'truncated':
        assert isinstance(error.value, LmdbError)


def test_verify_reads_every_key_and_names_a_bad_one(tmp_path, lmdbs):
    import lmdb
    assert verify_lmdb(lmdbs[1]) == 2
    bad = damaged_copy(tmp_path, lmdbs[1], 'bad_key')
    with lmdb.open(bad) as environment, environment.begin(write=True) as transaction:
        transaction.put(b'001', b'not a png')
    with pytest.raises(LmdbError, match="key '001' holds 9 bytes that are not an image"):
        verify_lmdb(bad)


def test_create_lmdb_verify_command(tmp_path, lmdbs, capsys):
    big = make_paired_lmdbs(tmp_path, 'big', 6, 64, 1)[1]
    truncated = damaged_copy(tmp_path, big, 'truncated')
    with pytest.raises(SystemExit) as exit_info:
        create_lmdb.main(['--verify', lmdbs[1], truncated])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1
    assert f'{lmdbs[1]}: 2 keys read and decoded' in out
    assert f"LMDB '{truncated}' is damaged" in err


# ------------------------------------------------------------------------------------------ training states
def experiment(tmp_path, name, iters=(2, 4), state_of=None):
    """``experiments/<name>`` with network files and training states of ``iters`` (states saved by
    experiment ``state_of``, default ``name``); returns the options resuming it."""
    models = tmp_path / 'experiments' / name / 'models'
    states = tmp_path / 'experiments' / name / 'training_states'
    models.mkdir(parents=True)
    states.mkdir()
    for iteration in iters:
        torch.save({'params': {'w': torch.ones(1)}}, models / f'net_g_{iteration}.pth')
        torch.save({'epoch': 0, 'iter': iteration, 'optimizers': [], 'schedulers': [],
                    'experiment': state_of or name, 'network_file': str(models / f'net_g_{iteration}.pth')},
                   states / f'{iteration}.state')
    return {'name': name, 'auto_resume': False, 'path': {'models': str(models), 'resume_state': None}}


def test_state_of_another_experiment_is_refused_naming_both(tmp_path):
    experiment(tmp_path, 'A')
    opt = experiment(tmp_path, 'B', iters=(4,), state_of='B')
    opt['path']['resume_state'] = str(tmp_path / 'experiments' / 'A' / 'training_states' / '4.state')
    with pytest.raises(ResumeError, match="4.state belongs to experiment 'A', not to this one \\('B'\\)"):
        read_resume_state(opt)


def test_network_checkpoint_given_as_resume_state_is_named(tmp_path):
    opt = experiment(tmp_path, 'A')
    opt['path']['resume_state'] = opt['path']['models'] + '/net_g_4.pth'
    with pytest.raises(ResumeError, match='net_g_4.pth is not a training state.*give it as path.pretrain_network_g'):
        read_resume_state(opt)


def test_missing_network_file_is_named(tmp_path):
    opt = experiment(tmp_path, 'A')
    os.remove(opt['path']['models'] + '/net_g_4.pth')
    opt['path']['resume_state'] = str(tmp_path / 'experiments' / 'A' / 'training_states' / '4.state')
    with pytest.raises(ResumeError, match='needs the network file .*net_g_4.pth, which is missing'):
        read_resume_state(opt)


@pytest.mark.parametrize('damage', ['truncated', 'network-missing'])
def test_auto_resume_skips_a_damaged_newest_state_with_a_warning(tmp_path, monkeypatch, caplog, damage):
    opt = {**experiment(tmp_path, 'A', iters=(2, 4, 6)), 'auto_resume': True, 'network_g': {'type': 'HINT'}}
    states = tmp_path / 'experiments' / 'A' / 'training_states'
    if damage == 'truncated':
        os.truncate(states / '6.state', 100)
    else:
        os.remove(opt['path']['models'] + '/net_g_6.pth')
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        state = compat.load_resume_state(opt)
    assert state['iter'] == 4 and opt['path']['resume_state'].endswith('4.state')
    assert opt['path']['pretrain_network_g'].endswith('net_g_4.pth')
    assert f'--auto_resume skips experiments/A/training_states/6.state' in caplog.text


def test_explicit_damaged_state_is_named(tmp_path):
    opt = experiment(tmp_path, 'A')
    path = tmp_path / 'experiments' / 'A' / 'training_states' / '4.state'
    os.truncate(path, 100)
    opt['path']['resume_state'] = str(path)
    with pytest.raises(ResumeError, match=f'resume_state {path} cannot be read'):
        read_resume_state(opt)


def test_saved_state_names_its_experiment_and_network_file(tmp_path):
    model = build_model(model_options(tmp_path))
    model.save_training_state(0, 3)
    state = torch.load(tmp_path / 'training_states' / '3.state', weights_only=True)
    assert state['experiment'] == 'robust' and state['network_file'] == str(tmp_path / 'models' / 'net_g_3.pth')


# ---------------------------------------------------------------------------------------------- 16-bit data
def test_16_bit_training_image_keeps_its_precision(tmp_path):
    rng = np.random.default_rng(0)
    for side in ('lq', 'gt'):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / 'a.png'), rng.integers(0, 65536, (16, 16, 3), dtype=np.uint16))
    stored = cv2.imread(str(tmp_path / 'gt' / 'a.png'), cv2.IMREAD_UNCHANGED)[..., ::-1].transpose(2, 0, 1)
    dataset = CheckedPairedImageDataset({'name': 'd', 'phase': 'val', 'scale': 1, 'dataroot_lq': str(tmp_path / 'lq'),
                                         'dataroot_gt': str(tmp_path / 'gt'), 'io_backend': {'type': 'disk'}})
    gt = dataset[0]['gt'].numpy()
    np.testing.assert_allclose(gt * 65535, stored, atol=0.02)  # 8 bits would be off by up to 128
