"""Robust training: non-finite losses and weights, atomic saves, exact resume, network options checked early."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from basicsr.models import build_model
from basicsr.utils import scandir
from basicsr.utils.registry import ARCH_REGISTRY

from hint_plugin import compat
from hint_plugin.errors import OptionsError
from hint_plugin.models.hint_model import NonFiniteError
from hint_plugin.utils.checkpoint import atomic_save, global_rng_states, restore_global_rng_states
from tests.helpers import (REPO, TINY_CONFIG, batch, check_as_option_file, logged_iters, make_paired_lmdbs,
                           model_options, parameters, pipeline_in_process, same, train_options, write_yaml)

SUBPROCESS_ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


# ------------------------------------------------------------------------------------------ non-finite values

def test_nonfinite_loss_stops_training_naming_iteration_and_terms(tmp_path):
    model = build_model(model_options(tmp_path))
    before = parameters(model)
    model.feed_data(batch(nan=True))
    with pytest.raises(NonFiniteError, match=r'iter 7: non-finite loss \(l_pix: nan, l_fft: nan; total: nan\)'):
        model.optimize_parameters(7)
    assert same(before, parameters(model)) and not model.optimizer_g.state
    model.feed_data(batch())
    model.optimize_parameters(8)  # a finite loss trains as before, and is not counted when skipping is off
    assert not same(before, parameters(model)) and 'skipped_steps' not in model.get_current_log()


def test_nonfinite_loss_skips_the_step_when_configured_and_counts_it(tmp_path):
    model = build_model(model_options(tmp_path, skip_nonfinite=True))
    before = parameters(model)
    model.feed_data(batch(nan=True))
    model.optimize_parameters(1)
    assert same(before, parameters(model)) and not model.optimizer_g.state
    assert all(p.grad is None or not p.grad.any() for p in model.net_g.parameters())
    assert model.get_current_log()['skipped_steps'] == 1 and np.isnan(model.get_current_log()['l_pix'])
    model.feed_data(batch())
    model.optimize_parameters(2)
    log = model.get_current_log()
    assert not same(before, parameters(model)) and log['skipped_steps'] == 1 and np.isfinite(log['l_pix'])
    model.save_training_state(epoch=0, current_iter=2)  # the count survives a resume
    state = torch.load(tmp_path / 'training_states' / '2.state', weights_only=True)
    assert state['skipped_steps'] == 1
    resumed = build_model(model_options(tmp_path, skip_nonfinite=True))
    resumed.resume_training(state)
    assert resumed.skipped_steps == 1


def test_skip_nonfinite_must_be_a_bool(tmp_path):
    check_as_option_file(model_options(tmp_path, skip_nonfinite=True))
    with pytest.raises(OptionsError, match="train.skip_nonfinite = 'yes': expected true or false"):
        check_as_option_file(model_options(tmp_path, skip_nonfinite='yes'))


def test_nonfinite_weights_are_never_saved(tmp_path):
    model = build_model(model_options(tmp_path))
    name, weight = next(iter(model.net_g.named_parameters()))
    with torch.no_grad():
        weight[0] = float('inf')
    with pytest.raises(NonFiniteError, match=rf'net_g_3\.pth: params\.{name} holds NaN or infinite values'):
        model.save(epoch=0, current_iter=3)
    assert not any((tmp_path / 'models').iterdir()) and not any((tmp_path / 'training_states').iterdir())


# ------------------------------------------------------------------------------------------------ atomic saves
def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_latest.pth'
    atomic_save({'params': {'w': torch.ones(3)}}, str(path))

    def save_half_then_fail(obj, file):
        file.write(b'PK\x03\x04 half a zip')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', save_half_then_fail)
    with pytest.raises(OSError, match='disk full'):
        atomic_save({'params': {'w': torch.zeros(3)}}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net_g_latest.pth']


# Loads checkpoint.py on its own: importing the package would pull in BasicSR, seconds for nothing here.
KILLED_DURING_SAVE = '''
import importlib.util, io, os, signal, sys
import torch

module_path, models, states, which = sys.argv[1:]
spec = importlib.util.spec_from_file_location('checkpoint', module_path)
checkpoint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checkpoint)
checkpoint.atomic_save({'params': {'w': torch.ones(3)}}, f'{models}/net_g_2.pth')
checkpoint.atomic_save({'epoch': 0, 'iter': 2}, f'{states}/2.state')
checkpoint.atomic_save({'params': {'w': torch.ones(3)}}, f'{models}/net_g_latest.pth')
real_save = torch.save

def save_and_die_halfway(obj, file):  # write half of the real bytes, then a real SIGKILL
    buffer = io.BytesIO()
    real_save(obj, buffer)
    file.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = save_and_die_halfway
if which == 'latest':
    checkpoint.atomic_save({'params': {'w': torch.zeros(3)}}, f'{models}/net_g_latest.pth')
else:
    checkpoint.atomic_save({'epoch': 1, 'iter': 4}, f'{states}/4.state')
'''


@pytest.mark.parametrize('which', ['latest', 'state'])
def test_kill_during_save_leaves_the_previous_checkpoint_for_auto_resume(tmp_path, monkeypatch, which):
    root = tmp_path / 'experiments' / 'killed'
    models, states = root / 'models', root / 'training_states'
    models.mkdir(parents=True)
    states.mkdir()
    module_path = REPO / 'hint_plugin' / 'utils' / 'checkpoint.py'
    process = subprocess.run([sys.executable, '-c', KILLED_DURING_SAVE, str(module_path), str(models), str(states),
                              which], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr[-3000:]
    if which == 'latest':  # the interrupted rewrite left the old file whole
        assert (models / 'net_g_latest.pth.tmp').exists()
    else:  # the interrupted state never got its name
        assert (states / '4.state.tmp').exists() and not (states / '4.state').exists()
    assert torch.equal(torch.load(models / 'net_g_latest.pth', weights_only=True)['params']['w'], torch.ones(3))

    assert list(scandir(str(states), suffix='state')) == ['2.state']  # what BasicSR's own look-up would see
    monkeypatch.chdir(tmp_path)
    opt = {'name': 'killed', 'auto_resume': True, 'network_g': {'type': 'HINT'},
           'path': {'resume_state': None, 'models': str(models)}}
    state = compat.load_resume_state(opt)
    assert state['iter'] == 2 and opt['path']['resume_state'].endswith('2.state')
    assert opt['path']['pretrain_network_g'] == str(models / 'net_g_2.pth')


# --------------------------------------------------------------------------------------------- exact resume
def test_random_states_load_with_weights_only_and_restore_exactly(tmp_path):
    random.seed(0)
    torch.manual_seed(1)
    np.random.seed(2)
    np.random.normal()  # a cached Gaussian is part of NumPy's state
    path = tmp_path / 'rng.state'
    atomic_save(global_rng_states(), str(path))
    first = (random.random(), np.random.normal(), torch.rand(2).tolist())
    restore_global_rng_states(torch.load(path, weights_only=True))
    assert (random.random(), np.random.normal(), torch.rand(2).tolist()) == first


def test_sampler_resumes_its_epoch_after_the_consumed_indices():
    sampler = compat.resumable_sampler_class()(list(range(10)), num_replicas=1, rank=0)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.resume_at(1, 4)
    assert list(sampler) == full[4:] and list(sampler) == full[4:]  # every pass over epoch 1
    sampler.set_epoch(2)
    assert len(list(sampler)) == 10


def test_loader_iterators_leave_torchs_global_generator_alone():
    loader = torch.utils.data.DataLoader(list(range(4)), batch_size=2)
    compat.give_loaders_own_generators([loader, None], seed=5)
    before = torch.get_rng_state()
    assert [batch.tolist() for batch in loader] == [[0, 1], [2, 3]]
    assert torch.equal(before, torch.get_rng_state())


def start_and_kill(cmd, cwd, state):
    """Run ``cmd`` until ``state`` exists, then SIGKILL it."""
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=SUBPROCESS_ENV)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not state.exists():
        time.sleep(0.02)
    assert process.poll() is None, f'training stopped before it could be killed:\n{process.stderr.read()[-3000:]}'
    process.send_signal(signal.SIGKILL)
    process.wait()


def final_weights(root, name):
    return torch.load(root / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)['params']


@pytest.mark.slow
def test_killed_and_resumed_run_matches_the_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """7 images in batches of 2: 3 batches per epoch (the 7th image dropped), so an epoch boundary at 6.
    Mixup (with the identity), flips and rotations, and progressive stages (no crop up to iter 5, then
    batch 1 of 2 and 8-pixel crops) draw random numbers throughout; validation runs every 4 iterations.

    The run that is killed is ``python tools/train.py`` in its own process (a real SIGKILL); the resumed and the
    uninterrupted runs call the command's main in this process (one intra-op thread, as the killed run has),
    where a fresh interpreter would add only its start-up."""
    data = {'train': make_paired_lmdbs(tmp_path, 'train', 7, 32, 0),
            'val': make_paired_lmdbs(tmp_path, 'val', 2, 24, 1)}
    total = 9

    def options(name, total_iter):
        opt = train_options(name, data, total_iter=total_iter, save_every=2)
        opt['datasets']['train'].update(iters=[5, 1000])
        return opt

    train = [sys.executable, str(REPO / 'tools' / 'train.py'), '-opt']
    straight = write_yaml(tmp_path / 'straight.yml', options('straight', total))
    interrupted = write_yaml(tmp_path / 'interrupted.yml', options('interrupted', 1000))
    states = tmp_path / 'experiments' / 'interrupted' / 'training_states'
    start_and_kill(train + [interrupted], tmp_path, states / '4.state')
    killed_at = max(int(p.name.split('.')[0]) for p in states.glob('*.state'))
    assert 4 <= killed_at < total - 2, f'killed too late ({killed_at}): no epoch boundary left to cross'

    status, resumed = pipeline_in_process('train', ['-opt', interrupted, '--auto_resume', '--force_yml',
                                                    f'train:total_iter={total}'], tmp_path, monkeypatch, capsys)
    assert status == 0, resumed[-5000:]
    assert f'Resuming training from epoch: 1, iter: {killed_at}.' in resumed
    assert f'Resuming epoch 1 after its first {killed_at - 3} of 3 batches.' in resumed
    assert logged_iters(resumed)[0] == killed_at + 1 and logged_iters(resumed)[-1] == total
    status, output = pipeline_in_process('train', ['-opt', straight], tmp_path, monkeypatch, capsys)
    assert status == 0, output[-5000:]

    expected, found = final_weights(tmp_path, 'straight'), final_weights(tmp_path, 'interrupted')
    assert expected.keys() == found.keys()
    difference = max((expected[k].float() - found[k].float()).abs().max().item() for k in expected)
    assert difference <= 1e-6


# ------------------------------------------------------------------------------------------ network options
@pytest.mark.parametrize('change, message', [
    ({'foo': 3}, r'network_g\.foo = 3: HINT has no such option \(expected one of: inp_channels, out_channels, dim'),
    ({'num_refinment_blocks': 1},
     r'network_g\.num_refinment_blocks = 1: HINT has no such option \(did you mean `num_refinement_blocks`\?\)'),
    ({'dim': '48'}, r"network_g\.dim must be an integer >= 4, got '48'"),
    ({'bias': 'no'}, r"network_g\.bias must be true or false, got 'no'"),
    ({'dim': 18}, r'network_g\.dim must be a multiple of 4 .*, got 18'),
    ({'num_blocks': [1, 1, -1, 1]}, r'network_g\.num_blocks\[2\] must be an integer >= 0, got -1'),
    ({'type': 'Hint'}, r"network_g\.type = 'Hint': no such network \(registered: .*HINT"),
])
def test_bad_network_options_fail_at_start_up_naming_key_value_and_expectation(tmp_path, change, message):
    with pytest.raises(OptionsError, match=message):
        check_as_option_file(model_options(tmp_path, is_train=False, network={'type': 'HINT', **TINY_CONFIG, **change}))


def test_good_network_options_build_without_drawing_random_numbers(tmp_path):
    torch.manual_seed(0)
    expected = ARCH_REGISTRY.get('HINT')(**TINY_CONFIG).state_dict()
    torch.manual_seed(0)
    model = build_model(model_options(tmp_path, is_train=False))
    found = model.net_g.state_dict()
    assert all(torch.equal(expected[k], found[k]) for k in expected)  # the meta-device check drew nothing
