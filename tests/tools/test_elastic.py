"""Elastic restarts under torchrun: a worker killed with SIGKILL, the group restarted, re-formed and resumed from
the newest complete training state, ending with the weights of an uninterrupted run, bit for bit (CPU, gloo)."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from hint_plugin.utils.elastic import KEY, agree_on_round
from tests.helpers import REPO, logged_iters, make_paired_lmdbs, train_options, write_yaml

SUBPROCESS_ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


def handshake(store, world_size):
    """:func:`agree_on_round` of every rank, each in a thread on one store; the names by rank."""
    names = {}

    def join(rank):
        names[rank] = agree_on_round(store, rank, world_size, timeout=timedelta(seconds=20))

    threads = [threading.Thread(target=join, args=(rank,)) for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return names


@pytest.mark.parametrize('world_size', [2, 3])
def test_round_handshake_agrees_on_a_fresh_name_despite_a_dead_rounds_keys(world_size):
    store = dist.HashStore()
    first = handshake(store, world_size)
    assert len(set(first.values())) == 1 and len(first) == world_size
    # a round that died half-way: a hello, an answer to an older hello and a confirmation, all stale
    store.set(f'{KEY}/hello/1', 'dead-round-hello')
    store.set(f'{KEY}/answer/1', 'dead-round-hello:dead-round-name')
    store.set(f'{KEY}/ready/1', 'dead-round-hello:dead-round-name')
    second = handshake(store, world_size)
    assert len(set(second.values())) == 1 and len(second) == world_size
    assert set(second.values()).isdisjoint({*first.values(), 'dead-round-name'})


def test_round_handshake_times_out_naming_the_rank_when_a_worker_never_comes():
    with pytest.raises(TimeoutError, match='rank 0: the workers of this round did not all join'):
        agree_on_round(dist.HashStore(), 0, 2, timeout=timedelta(seconds=0.2))


# ------------------------------------------------------------------------------------------------ end to end
def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torchrun(opt_path, port, max_restarts):
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc-per-node', '2',
            '--max-restarts', str(max_restarts), '--rdzv-backend', 'c10d', '--rdzv-endpoint', f'127.0.0.1:{port}',
            str(REPO / 'tools' / 'train.py'), '-opt', opt_path, '--launcher', 'pytorch', '--auto_resume']


def worker_pid(agent_pid, rank):
    """The pid of the agent's worker of global rank ``rank`` (from /proc: parent pid and environment)."""
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as file:
                parent = int(file.read().rsplit(')', 1)[1].split()[1])
            with open(f'/proc/{entry}/environ', 'rb') as file:
                environment = file.read().split(b'\0')
        except OSError:
            continue
        if parent == agent_pid and f'RANK={rank}'.encode() in environment:
            return int(entry)
    return None


def final_weights(root, name):
    return torch.load(root / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)['params']


ELASTIC_TOTAL_ITER = 12


def elastic_options(root, data, name):
    """Two ranks of batch 1, 12 iterations (patch stage 2 from iteration 6), a state every 2, validation at 6
    and 12: the options of every run below; written to ``root/<name>.yml``."""
    opt = train_options(name, data, total_iter=ELASTIC_TOTAL_ITER, save_every=2)
    opt['datasets']['train'].update(batch_size_per_gpu=1, mini_batch_sizes=[1, 1], iters=[5, 1000])
    opt['val']['val_freq'] = 6
    return write_yaml(root / f'{name}.yml', opt)


@pytest.fixture(scope='module')
def elastic_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('elastic_data')
    return {'train': make_paired_lmdbs(root, 'train', 6, 32, 0), 'val': make_paired_lmdbs(root, 'val', 2, 24, 1)}


@pytest.fixture(scope='module')
def uninterrupted_weights(tmp_path_factory, elastic_data):
    """The final weights of one torchrun with two workers that nothing interrupts (the reference of both tests
    below: the same command and options as their runs)."""
    root = tmp_path_factory.mktemp('straight')
    straight = subprocess.run(torchrun(elastic_options(root, elastic_data, 'straight'), free_port(), max_restarts=0),
                              cwd=root, capture_output=True, text=True, timeout=180, env=SUBPROCESS_ENV)
    assert straight.returncode == 0, straight.stdout[-3000:] + straight.stderr[-3000:]
    assert 'World size (gpu number): 2' in straight.stdout + straight.stderr
    return final_weights(root, 'straight')


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_and_ends_as_an_uninterrupted_run(tmp_path, elastic_data,
                                                                            uninterrupted_weights):
    """Two workers, 12 iterations, a state every 2; rank 1 is killed once 2.state exists. The agent restarts
    both, the group re-forms on the same agent store and resumes from the newest state."""
    total = ELASTIC_TOTAL_ITER
    states = tmp_path / 'experiments' / 'killed' / 'training_states'
    process = subprocess.Popen(torchrun(elastic_options(tmp_path, elastic_data, 'killed'), free_port(),
                                        max_restarts=1), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=SUBPROCESS_ENV)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None and not (states / '2.state').exists():
            time.sleep(0.01)
        victim = worker_pid(process.pid, rank=1)
        assert victim is not None, 'no rank-1 worker to kill'
        os.kill(victim, signal.SIGKILL)
        killed_at = max(int(p.name.split('.')[0]) for p in states.glob('*.state'))
        out, _ = process.communicate(timeout=180)
        (tmp_path / 'torchrun.log').write_text(out)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, out[-6000:]
    assert killed_at < total, 'the run ended before the kill'
    assert re.search(r'failed \(exitcode: -9\) local_rank: 1', out), out[-4000:]  # the agent saw the kill
    resumed_at = [int(n) for n in re.findall(r'Resuming training from epoch: \d+, iter: (\d+)\.', out)]
    assert len(resumed_at) == 1 and 2 <= resumed_at[0] < total  # rank 0 logs it
    iters = logged_iters(out)  # the first round may have logged a few iterations past its last state
    restart = len(iters) - 1 - iters[::-1].index(resumed_at[0] + 1)
    assert iters[restart:] == list(range(resumed_at[0] + 1, total + 1))

    expected, found = uninterrupted_weights, final_weights(tmp_path, 'killed')
    assert expected.keys() == found.keys()
    assert all(torch.equal(expected[k], found[k]) for k in expected)


def node_command(opt_path, port, node_rank):
    """One "node" of two: a torchrun with one worker joining the c10d rendezvous at ``port``."""
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2', '--node-rank', str(node_rank),
            '--nproc-per-node', '1', '--rdzv-backend', 'c10d', '--rdzv-endpoint', f'127.0.0.1:{port}',
            '--rdzv-id', 'hint-two-nodes', str(REPO / 'tools' / 'train.py'), '-opt', opt_path,
            '--launcher', 'pytorch']


@pytest.mark.slow
def test_two_nodes_with_a_c10d_rendezvous_train_as_one_two_process_run(tmp_path, elastic_data, uninterrupted_weights):
    """Two torchrun commands (``--nnodes 2``, one worker each) form one group of two: their weights are those
    of one torchrun with two workers, bit for bit."""
    port, nodes_opt = free_port(), elastic_options(tmp_path, elastic_data, 'nodes')
    nodes = [subprocess.Popen(node_command(nodes_opt, port, rank), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=SUBPROCESS_ENV) for rank in (0, 1)]
    try:
        outs = [node.communicate(timeout=180)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [node.returncode for node in nodes] == [0, 0], '\n'.join(out[-3000:] for out in outs)
    assert 'World size (gpu number): 2' in ''.join(outs)
    expected, found = uninterrupted_weights, final_weights(tmp_path, 'nodes')
    assert expected.keys() == found.keys() and all(torch.equal(expected[k], found[k]) for k in expected)
