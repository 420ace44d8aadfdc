"""Gradient accumulation (``train.accum_iter``): one optimizer step in k forward/backward passes equals the
step on the whole batch, alone and under 2-process gloo DDP, where only the last pass all-reduces."""
import os
import time

import conftest  # noqa: F401  (the plugin set up before BasicSR, in spawned workers too)
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from basicsr.models import build_model
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from hint_plugin.models.accumulation import batch_coupling_note, micro_batches
from hint_plugin.errors import OptionsError
from tests.helpers import TINY_CONFIG, check_as_option_file, model_options, parameters

MIXING = {'mixup': True, 'mixup_beta': 1.2, 'use_identity': True}
# variant refined: per-image statistics (official averages its cache over the batch: no equality to expect)
REFINED = {'type': 'HINT', **TINY_CONFIG, 'variant': 'refined'}


def float64_batches(count, size=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [{'lq': torch.rand(size, 3, 16, 16, generator=generator, dtype=torch.float64),
             'gt': torch.rand(size, 3, 16, 16, generator=generator, dtype=torch.float64)} for _ in range(count)]


def float64_model(options):
    """A model built in float64 (parameters made as float64 from the start: DDP's buckets follow them)."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return build_model(options)
    finally:
        torch.set_default_dtype(default)


def refined_options(path, **train):
    """A tiny refined HINT with mixup and gradient clipping."""
    path.mkdir(exist_ok=True)
    return model_options(path, network=REFINED, mixing_augs=MIXING, use_grad_clip=True, **train)


def gradients(model):
    return {name: value.grad.detach().clone() for name, value in model.net_g.named_parameters()
            if value.grad is not None}


def assert_equal_in_float64(expected, found, tolerance=1e-12):
    assert expected.keys() == found.keys() and expected
    for name in expected:
        scale = expected[name].abs().max().item() + 1e-30
        error = (found[name] - expected[name]).abs().max().item()
        assert error <= tolerance * max(scale, 1.0), f'{name}: {error:.3e} off (largest value {scale:.3e})'


def test_micro_batches_cover_the_batch_in_order():
    def sizes_and_firsts(batch_size, accum_iter):
        parts = micro_batches(torch.arange(batch_size), accum_iter)
        assert torch.equal(torch.cat(parts), torch.arange(batch_size))
        return [(len(part), part[0].item()) for part in parts]

    assert sizes_and_firsts(6, 4) == [(2, 0), (2, 2), (1, 4), (1, 5)]
    assert sizes_and_firsts(4, 1) == [(4, 0)]
    assert sizes_and_firsts(2, 4) == [(1, 0), (1, 1)]


@pytest.mark.parametrize('accum_iter', [2, 4])  # 4: micro-batches of 2, 2, 1 and 1 images (weighted by size)
def test_accumulated_step_equals_the_large_batch_in_float64(tmp_path, accum_iter):
    """Two optimizer steps (AdamW, gradient clipping, mixup and the identity draw from the model's generator) on
    batches of 6: the gradients of each step and the weights after it agree to 1e-12."""
    large = float64_model(refined_options(tmp_path / 'large'))
    accumulated = float64_model(refined_options(tmp_path / 'acc', accum_iter=accum_iter))
    assert large.accum_iter == 1 and accumulated.accum_iter == accum_iter
    calls = []
    accumulated.net_g.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    initial = parameters(large)
    for iteration, data in enumerate(float64_batches(2), start=1):
        for model in (large, accumulated):
            model.feed_data(data)
            model.optimize_parameters(iteration)
        assert_equal_in_float64(gradients(large), gradients(accumulated))
        assert_equal_in_float64(parameters(large), parameters(accumulated))
        assert large.get_current_log()['l_pix'] == pytest.approx(accumulated.get_current_log()['l_pix'], rel=1e-12)
    assert calls == [len(part) for part in micro_batches(torch.zeros(6), accum_iter)] * 2
    assert not all(torch.equal(initial[name], value) for name, value in parameters(large).items())
    assert accumulated.lq.shape[0] == 6  # the whole batch again after the passes


def test_official_variant_couples_the_batch_and_says_so(tmp_path):
    """The official cache's batch statistics: split passes give another gradient, and the log warns."""
    official = {'type': 'HINT', **TINY_CONFIG}
    assert batch_coupling_note(official, 2) and not batch_coupling_note(official, 1)
    assert not batch_coupling_note(REFINED, 2)
    models = []
    for name, accum_iter in (('large', 1), ('acc', 2)):
        (tmp_path / name).mkdir()
        models.append(float64_model(model_options(tmp_path / name, network=official, accum_iter=accum_iter)))
        models[-1].feed_data(float64_batches(1)[0])
        models[-1].optimize_parameters(1)
    large, accumulated = (gradients(model) for model in models)
    assert max((large[k] - accumulated[k]).abs().max().item() for k in large) > 1e-6


def test_bad_accum_iter_is_named(tmp_path):
    check_as_option_file(model_options(tmp_path, accum_iter=2))
    with pytest.raises(OptionsError, match='train.accum_iter = 0: expected an integer >= 1'):
        check_as_option_file(model_options(tmp_path, accum_iter=0))


# ----------------------------------------------------------------------------------------------- under DDP
def ddp_worker(rank, world_size, init_file, accum_iters, root):
    """One rank: for each ``accum_iter`` in turn, a float64 tiny HINT under DDP (gloo), built afresh (same seed),
    two steps on its own batches; reports its weights, gradients and how many all-reduces DDP's communication
    hook ran, in ``root/result<rank>_accum<accum_iter>.pt``. One process group serves every run."""
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        for accum_iter in accum_iters:
            options = refined_options(root / f'rank{rank}_accum{accum_iter}', accum_iter=accum_iter)
            options.update(dist=True, rank=rank, world_size=world_size)
            model = float64_model(options)
            assert isinstance(model.net_g, torch.nn.parallel.DistributedDataParallel)
            assert model.accum_iter == accum_iter
            all_reduces = []

            def counting_hook(state, bucket, all_reduces=all_reduces):
                all_reduces.append(bucket.index())
                return default_hooks.allreduce_hook(None, bucket)

            model.net_g.register_comm_hook(None, counting_hook)
            for iteration, data in enumerate(float64_batches(2, seed=10 + rank), start=1):
                model.feed_data(data)
                model.optimize_parameters(iteration)
            torch.save((parameters(model), gradients(model), len(all_reduces)),
                       root / f'result{rank}_accum{accum_iter}.pt')
    finally:
        dist.destroy_process_group()


def train_under_ddp(tmp_path, accum_iters, world_size=2, timeout=240):
    """Spawn ``world_size`` :func:`ddp_worker` processes; their results by ``accum_iter``, then by rank."""
    root = tmp_path / 'ddp'
    root.mkdir()
    context = mp.get_context('spawn')
    old = os.environ.get('OMP_NUM_THREADS')
    os.environ['OMP_NUM_THREADS'] = '1'  # the spawned interpreters read it at start
    processes = []
    try:
        processes = [context.Process(target=ddp_worker, args=(rank, world_size, str(root / 'init'), accum_iters,
                                                             root)) for rank in range(world_size)]
        for process in processes:
            process.start()
        deadline = time.time() + timeout
        while any(p.is_alive() for p in processes) and time.time() < deadline:
            if any(p.exitcode not in (None, 0) for p in processes):
                break  # one failed: the other would wait for it until the gloo timeout
            time.sleep(0.1)
        assert [p.exitcode for p in processes] == [0] * world_size
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        if old is None:
            os.environ.pop('OMP_NUM_THREADS')
        else:
            os.environ['OMP_NUM_THREADS'] = old
    return {accum_iter: {rank: torch.load(root / f'result{rank}_accum{accum_iter}.pt', weights_only=True)
                         for rank in range(world_size)} for accum_iter in accum_iters}


@pytest.mark.slow  # two spawned interpreters, each training the large batch then the accumulated one
def test_accumulation_under_ddp_equals_the_large_batch_and_all_reduces_once_per_step(tmp_path):
    runs = train_under_ddp(tmp_path, (1, 3))
    large, accumulated = runs[1], runs[3]
    for rank in (0, 1):
        weights, grads, reductions = accumulated[rank]
        assert_equal_in_float64(large[rank][0], weights)
        assert_equal_in_float64(large[rank][1], grads)
        assert reductions == large[rank][2] > 0  # per step one all-reduce per bucket, not one per pass
    assert_equal_in_float64(accumulated[0][0], accumulated[1][0], tolerance=0)  # the ranks agree
