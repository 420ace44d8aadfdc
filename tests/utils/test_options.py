"""Every option file under options/, checked against BasicSR 1.4.2 and the HINT plugin; one test id per file.

The files are found by glob, so a new file (options/demo/ included) is covered without editing this module.
Files under options/train are parsed as training options and files under options/test as test options, by
BasicSR's own ``parse_options``; in any other folder (options/demo holds both kinds) a file is a training file
when it has a ``datasets.train`` entry. For each file:

* ``test_options_are_sane``: the keys HINTModel, BasicSR's pipelines and the datasets read are present and
  hold sane values (the network builds, the optimiser exists in ``torch.optim``, the schedule and the
  progressive lists agree with ``total_iter``, the metrics are registered, no number was left as a string...);
* ``test_datasets_build_on_tiny_fixtures``: every dataset, pointed at a few small random images (folders, or a
  fresh LMDB per dataset for lmdb backends: py-lmdb opens an LMDB only once per process), builds with
  ``build_dataset`` and yields an item of the expected shape;
* ``test_model_builds_and_runs``: the model (network shrunk for speed) builds with ``build_model`` (test files:
  loading a tiny checkpoint saved under the file's ``param_key_g``) and does what BasicSR's train.py / test.py do
  with it: two training iterations (first and last progressive stage) and a validation pass over every val/test
  set, with the file's metrics and image saving.

Plus checks across files: every options/train recipe has an options/test file of the same name, training runs
have distinct names, and a test file loading the weights of a run here (``experiments/<name>/models/*.pth`` or
``experiments/pretrained_models/<name>.pth``) describes the same network as that run's training file.
"""
import functools
import json
import math
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import hint_plugin  # noqa: F401  (must come before basicsr: the torchvision alias, registrations)
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.options import ordered_yaml, parse_options
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY
from torch.utils.data import default_collate

from conftest import REPO

OPTIONS_DIR = REPO / 'options'
TRAIN_FOLDER, TEST_FOLDER = 'train', 'test'  # other folders (options/demo) may hold both kinds: see is_train_file
# options/authors/ holds files in the HINT authors' dialect (ImageCleanModel ...): tests/test_authors_options.py
OPTION_FILES = sorted(p for p in OPTIONS_DIR.rglob('*') if p.is_file() and p.suffix in ('.yml', '.yaml')
                      and p.relative_to(OPTIONS_DIR).parts[0] != 'authors')

# Schedulers HINTModel builds: its own cyclic one, and those BasicSR's BaseModel.setup_schedulers knows.
KNOWN_SCHEDULERS = ('CosineAnnealingRestartCyclicLR', 'MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
# Metrics that need no ground truth (BasicSR's SRModel applies every metric of val.metrics to every set of a file).
NO_REFERENCE_METRICS = ('calculate_niqe', )
LQ_ONLY_DATASETS = ('SingleImageDataset', )  # datasets that return no gt
# datasets that read both dataroot_lq and dataroot_gt
PAIRED_DATASETS = ('PairedImageDataset', 'CheckedPairedImageDataset')
NOISE_DATASETS = ('GaussianNoiseDataset', )  # clean images in, noise added on the fly
NUMBER_AS_STRING = re.compile(r'^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$|^[-+]?\d*\.\d+$|^[-+]?\d+$')

# Tiny fixtures: a few random images per dataset root.
IMAGE_NAMES = ('img_000', 'img_001')  # per dataset root; one for sets without gt (NIQE is slow)
PAIRED_SIZE = (28, 36)  # (H, W), not multiples of 8: validation goes through the padding
NO_REFERENCE_SIZE = (100, 196)  # NIQE needs two blocks of 96 x 96 pixels at least
TINY_PATCH = 24  # gt_size of the fixtures; the progressive gt_sizes are scaled along
TINY_NETWORK = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])


def option_id(path):
    return path.relative_to(OPTIONS_DIR).as_posix()


def load_yaml(path):
    with open(path, encoding='utf-8') as f:
        return json.loads(json.dumps(yaml.load(f, Loader=ordered_yaml()[0])))


@functools.lru_cache(maxsize=None)
def is_train_file(path):
    """options/train: training options; options/test: test options; any other folder (options/demo holds both
    kinds): training options when the file has a ``datasets.train`` entry, the one thing train.py requires."""
    folder = path.relative_to(OPTIONS_DIR).parts[0]
    if folder in (TRAIN_FOLDER, TEST_FOLDER):
        return folder == TRAIN_FOLDER
    return 'train' in (load_yaml(path).get('datasets') or {})


per_option_file = pytest.mark.parametrize('option_file', OPTION_FILES, ids=option_id)
per_test_file = pytest.mark.parametrize('option_file', [p for p in OPTION_FILES if not is_train_file(p)],
                                        ids=option_id)


def parse(option_file, monkeypatch):
    """The options as BasicSR's train.py / test.py see them (``-opt`` comes from ``sys.argv``)."""
    monkeypatch.setattr(sys, 'argv', ['basicsr', '-opt', str(option_file)])
    opt, _ = parse_options(str(REPO), is_train=is_train_file(option_file))
    return opt


def has_gt(dataset_opt):
    return dataset_opt.get('type') not in LQ_ONLY_DATASETS and dataset_opt.get('dataroot_gt') is not None


def dataset_roots(dataset_opt):
    return [dataset_opt[key] for key in ('dataroot_gt', 'dataroot_lq') if dataset_opt.get(key) is not None]


@functools.lru_cache(maxsize=None)
def _build_network(config_json):
    """Build a network once per distinct configuration, on the meta device (no memory, same checks)."""
    with torch.device('meta'):
        return build_network(json.loads(config_json))


# ------------------------------------------------------------------------------------------------ checks
def _is_int(value, minimum=None):
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)


def _is_number(value, minimum=None, above=None):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (minimum is None or value >= minimum) and (above is None or value > above)


def _is_int_list(value, minimum=1):
    return isinstance(value, list) and len(value) > 0 and all(_is_int(v, minimum) for v in value)


def _numbers_left_as_strings(node, where):
    """PyYAML reads ``3e-4`` (no ``!!float``, no dot) as a string: list every string that looks like a number."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numbers_left_as_strings(value, f'{where}.{key}' if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _numbers_left_as_strings(value, f'{where}[{i}]')
    elif isinstance(node, str) and NUMBER_AS_STRING.match(node.strip()):
        yield f'{where}: {node!r} is a string, not a number (write e.g. !!float 3e-4)'


def _check_general(opt, problems):
    if not (isinstance(opt.get('name'), str) and opt['name']):
        problems.append('name: missing')
    if opt.get('model_type') not in ('HINTModel', 'ImageCleanModel'):  # ImageCleanModel: + val.use_image
        problems.append(f"model_type: expected HINTModel or ImageCleanModel, got {opt.get('model_type')!r}")
    if opt.get('scale') != 1:
        problems.append(f"scale: expected 1 (restoration), got {opt.get('scale')!r}")
    if not _is_int(opt.get('num_gpu'), 0):
        problems.append(f"num_gpu: expected 'auto' or an integer, got {opt.get('num_gpu')!r}")
    if not _is_int(opt.get('manual_seed')):
        problems.append(f"manual_seed: expected an integer, got {opt.get('manual_seed')!r}")


def _check_network(opt, problems):
    network = opt.get('network_g')
    if not isinstance(network, dict) or network.get('type') not in ARCH_REGISTRY:
        problems.append(f'network_g: missing or of an unregistered type: {network!r}')
        return
    try:
        _build_network(json.dumps(network, sort_keys=True))
    except Exception as err:  # any construction error is a problem of this file
        problems.append(f'network_g: does not build: {type(err).__name__}: {err}')


def _check_progressive(key, dataset, total_iter, problems):
    lists = {name: dataset.get(name) for name in ('mini_batch_sizes', 'iters', 'gt_sizes')}
    if all(value is None for value in lists.values()):
        return
    for name, value in lists.items():
        if not _is_int_list(value):
            problems.append(f'datasets.{key}.{name}: expected a list of positive integers, got {value!r}')
            return
    if len({len(value) for value in lists.values()}) != 1:
        problems.append(f'datasets.{key}: mini_batch_sizes, iters and gt_sizes differ in length: {lists}')
        return
    if _is_int(dataset.get('gt_size')) and max(lists['gt_sizes']) > dataset['gt_size']:
        problems.append(f"datasets.{key}.gt_sizes: {lists['gt_sizes']} exceeds gt_size {dataset['gt_size']}, the "
                        'patch the loader delivers')
    if _is_int(dataset.get('batch_size_per_gpu')) and max(lists['mini_batch_sizes']) > dataset['batch_size_per_gpu']:
        problems.append(f"datasets.{key}.mini_batch_sizes: {lists['mini_batch_sizes']} exceeds batch_size_per_gpu "
                        f"{dataset['batch_size_per_gpu']}, the batch the loader delivers")
    if _is_int(total_iter) and sum(lists['iters']) != total_iter:
        problems.append(f"datasets.{key}.iters: the stages sum to {sum(lists['iters'])}, not train.total_iter "
                        f'({total_iter}); make the last stage run to the end explicitly')


def _check_datasets(opt, train_file, problems):
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict) or not datasets:
        problems.append('datasets: missing or empty')
        return
    phases = {key: key.split('_')[0] for key in datasets}
    allowed = ('train', 'val') if train_file else ('test', 'val')
    for key, phase in phases.items():
        if phase not in allowed:
            problems.append(f'datasets.{key}: phase {phase!r} is not one of {allowed} for this file')
    if train_file and list(phases.values()).count('train') != 1:
        problems.append("datasets: a training file needs exactly one 'train' dataset")

    total_iter = (opt.get('train') or {}).get('total_iter')
    names, lmdb_paths = [], []
    for key, dataset in datasets.items():
        where = f'datasets.{key}'
        names.append(dataset.get('name'))
        kind = dataset.get('type')
        if not (isinstance(dataset.get('name'), str) and isinstance(kind, str)):
            problems.append(f'{where}: needs a name and a type')
            continue
        backend = (dataset.get('io_backend') or {}).get('type')
        if backend not in ('disk', 'lmdb'):
            problems.append(f'{where}.io_backend.type: expected disk or lmdb, got {backend!r}')
        needed = (['dataroot_gt', 'dataroot_lq'] if kind in PAIRED_DATASETS else
                  ['dataroot_gt'] if kind in NOISE_DATASETS else ['dataroot_lq'] if kind in LQ_ONLY_DATASETS else [])
        for root in needed:
            if not isinstance(dataset.get(root), str):
                problems.append(f'{where}.{root}: required by {kind}')
        roots = dataset_roots(dataset)
        if not roots:
            problems.append(f'{where}: no dataroot_gt or dataroot_lq')
        for root in roots:
            if (backend == 'lmdb') != str(root).endswith('.lmdb'):
                problems.append(f'{where}: {root!r} does not suit io_backend {backend} (LMDB paths end in .lmdb)')
            if backend == 'lmdb':
                lmdb_paths.append(root)

        if kind in NOISE_DATASETS:
            if dataset['phase'] == 'train':
                sigma_range = dataset.get('sigma_range')
                if not (isinstance(sigma_range, list) and len(sigma_range) == 2
                        and all(_is_number(s, 0) for s in sigma_range) and sigma_range[0] <= sigma_range[1]):
                    problems.append(f'{where}.sigma_range: expected [low, high] with 0 <= low <= high, '
                                    f'got {sigma_range!r}')
            elif not _is_number(dataset.get('sigma_test'), 0):
                problems.append(f"{where}.sigma_test: expected a number >= 0, got {dataset.get('sigma_test')!r}")

        if dataset['phase'] == 'train':
            if not _is_int(dataset.get('gt_size'), 1):
                problems.append(f"{where}.gt_size: expected a positive integer, got {dataset.get('gt_size')!r}")
            for flag in ('use_hflip', 'use_rot'):
                if not isinstance(dataset.get(flag), bool):
                    problems.append(f'{where}.{flag}: expected true or false, got {dataset.get(flag)!r}')
            for count, minimum in (('batch_size_per_gpu', 1), ('num_worker_per_gpu', 0),
                                   ('dataset_enlarge_ratio', 1)):
                if not _is_int(dataset.get(count, 1), minimum):
                    problems.append(f'{where}.{count}: expected an integer >= {minimum}, got {dataset.get(count)!r}')
            if dataset.get('prefetch_mode') not in (None, 'cpu', 'cuda'):
                problems.append(f"{where}.prefetch_mode: expected ~, cpu or cuda, got {dataset['prefetch_mode']!r}")
            _check_progressive(key, dataset, total_iter, problems)

    if len(set(names)) != len(names):
        problems.append(f'datasets: names repeat ({names}); results and best metrics are kept per name')
    if len(set(lmdb_paths)) != len(lmdb_paths):
        problems.append(f'datasets: an LMDB is used twice ({lmdb_paths}); py-lmdb opens an LMDB only once per '
                        'process (use disk folders for sets read several times)')


def _check_scheduler(train, problems):
    scheduler = train.get('scheduler') or {}
    kind, total_iter = scheduler.get('type'), train.get('total_iter')
    if kind not in KNOWN_SCHEDULERS:
        problems.append(f'train.scheduler.type: {kind!r} is none of {KNOWN_SCHEDULERS}')
        return
    if kind in ('MultiStepLR', 'MultiStepRestartLR'):
        milestones = scheduler.get('milestones')
        if not _is_int_list(milestones) or sorted(milestones) != milestones:
            problems.append(f'train.scheduler.milestones: expected increasing positive integers, got {milestones!r}')
        return
    periods, weights = scheduler.get('periods'), scheduler.get('restart_weights')
    eta_mins = scheduler.get('eta_mins') if kind == 'CosineAnnealingRestartCyclicLR' else None
    if not _is_int_list(periods):
        problems.append(f'train.scheduler.periods: expected positive integers, got {periods!r}')
        return
    if not (isinstance(weights, list) and all(_is_number(w, 0) for w in weights)):
        problems.append(f'train.scheduler.restart_weights: expected numbers >= 0, got {weights!r}')
    elif len(weights) != len(periods):
        problems.append(f'train.scheduler: {len(periods)} periods but {len(weights)} restart_weights')
    if kind == 'CosineAnnealingRestartCyclicLR':
        if not (isinstance(eta_mins, list) and all(_is_number(e, 0) for e in eta_mins)):
            problems.append(f'train.scheduler.eta_mins: expected numbers >= 0, got {eta_mins!r}')
        elif len(eta_mins) != len(periods):
            problems.append(f'train.scheduler: {len(periods)} periods but {len(eta_mins)} eta_mins')
    elif not _is_number(scheduler.get('eta_min', 0), 0):
        problems.append(f"train.scheduler.eta_min: expected a number >= 0, got {scheduler.get('eta_min')!r}")
    if _is_int(total_iter) and sum(periods) != total_iter:
        problems.append(f'train.scheduler.periods: sum to {sum(periods)}, not train.total_iter ({total_iter})')


def _check_loss(where, loss, problems):
    if not isinstance(loss, dict) or loss.get('type') not in LOSS_REGISTRY:
        problems.append(f'{where}: missing or of an unregistered loss type: {loss!r}')
    elif not _is_number(loss.get('loss_weight', 1.0), above=0):
        problems.append(f"{where}.loss_weight: expected a positive number, got {loss.get('loss_weight')!r}")


def _check_train(opt, problems):
    train = opt.get('train')
    if not isinstance(train, dict):
        problems.append('train: missing')
        return
    if not _is_int(train.get('total_iter'), 1):
        problems.append(f"train.total_iter: expected a positive integer, got {train.get('total_iter')!r}")
    if not _is_int(train.get('warmup_iter', -1), -1):
        problems.append(f"train.warmup_iter: expected -1 or an integer >= 0, got {train.get('warmup_iter')!r}")
    if train.get('ema_decay') is not None and not (_is_number(train['ema_decay'], 0) and train['ema_decay'] < 1):
        problems.append(f"train.ema_decay: expected a number in [0, 1), got {train['ema_decay']!r}")

    optim = dict(train.get('optim_g') or {})
    optim_type = optim.pop('type', None)
    optimizer_class = getattr(torch.optim, str(optim_type), None)
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
        problems.append(f'train.optim_g.type: {optim_type!r} names no torch.optim optimizer')
    elif not _is_number(optim.get('lr'), above=0):
        problems.append(f"train.optim_g.lr: expected a positive number, got {optim.get('lr')!r}")
    else:
        try:  # the keywords (weight_decay, betas, ...) must be the optimiser's own
            optimizer_class([torch.nn.Parameter(torch.zeros(1))], **optim)
        except Exception as err:  # any construction error is a problem of this file
            problems.append(f'train.optim_g: {optimizer_class.__name__} rejects {optim}: {err}')
    _check_scheduler(train, problems)

    _check_loss('train.pixel_opt', train.get('pixel_opt'), problems)
    if train.get('fft_loss_opt') is not None:
        _check_loss('train.fft_loss_opt', train['fft_loss_opt'], problems)
    mixing = train.get('mixing_augs') or {}
    if not isinstance(mixing.get('mixup', False), bool):
        problems.append(f"train.mixing_augs.mixup: expected true or false, got {mixing.get('mixup')!r}")
    elif mixing.get('mixup') and not _is_number(mixing.get('mixup_beta', 1.2), above=0):
        problems.append(f"train.mixing_augs.mixup_beta: expected a positive number, got {mixing.get('mixup_beta')!r}")
    if not isinstance(train.get('use_grad_clip', False), bool):
        problems.append(f"train.use_grad_clip: expected true or false, got {train.get('use_grad_clip')!r}")
    elif train.get('use_grad_clip') and not _is_number(train.get('grad_clip_max_norm', 0.01), above=0):
        problems.append(f"train.grad_clip_max_norm: expected a positive number, got {train['grad_clip_max_norm']!r}")

    logger = opt.get('logger') or {}
    for key in ('print_freq', 'save_checkpoint_freq'):
        if not _is_number(logger.get(key), above=0):
            problems.append(f'logger.{key}: expected a positive number, got {logger.get(key)!r}')


def _check_paths(opt, train_file, problems):
    path = opt.get('path') or {}
    pretrain = path.get('pretrain_network_g')
    if train_file:
        if pretrain is not None and not isinstance(pretrain, str):
            problems.append(f'path.pretrain_network_g: expected ~ or a path, got {pretrain!r}')
        return
    if not (isinstance(pretrain, str) and pretrain.endswith('.pth')):
        problems.append(f'path.pretrain_network_g: a test file needs the weights (a .pth), got {pretrain!r}')
    if not isinstance(path.get('param_key_g', 'params'), str):
        problems.append(f"path.param_key_g: expected a key such as params, got {path.get('param_key_g')!r}")
    if path.get('strict_load_g', True) is not True:
        problems.append('path.strict_load_g: a test file should load every weight (true)')


def _check_val(opt, train_file, problems):
    val = opt.get('val')
    if val is None:
        if not train_file:
            problems.append('val: missing (test.py reads val.save_img and val.metrics)')
        elif any(key.startswith('val') for key in opt.get('datasets') or {}):
            problems.append('val: missing, so train.py never runs the val_* datasets (add val.val_freq)')
        return
    if not _is_int(val.get('window_size', 8), 1):
        problems.append(f"val.window_size: expected a positive integer, got {val.get('window_size')!r}")
    if train_file and not _is_number(val.get('val_freq'), above=0):
        problems.append(f"val.val_freq: expected a positive number, got {val.get('val_freq')!r}")
    if not isinstance(val.get('save_img', False), bool):
        problems.append(f"val.save_img: expected true or false, got {val.get('save_img')!r}")
    elif not train_file and val.get('save_img') and 'suffix' not in val:
        problems.append("val.suffix: SRModel reads val['suffix'] when saving test images; write suffix: ~")
    tile = val.get('tile')
    if tile is not None:
        size, overlap = (tile or {}).get('size'), (tile or {}).get('overlap', 32)
        if not (_is_int(size, 8) and _is_int(overlap, 0) and overlap < size):
            problems.append(f'val.tile: expected {{size: int >= 8, overlap: int in [0, size)}}, got {tile!r}')

    metrics = val.get('metrics')
    if metrics is None:
        return
    if not isinstance(metrics, dict) or not metrics:
        problems.append(f'val.metrics: expected a mapping of metrics, got {metrics!r}')
        return
    without_gt = [d['name'] for d in (opt.get('datasets') or {}).values()
                  if isinstance(d, dict) and d.get('phase') != 'train' and not has_gt(d)]
    for name, metric in metrics.items():
        kind = (metric or {}).get('type')
        if kind not in METRIC_REGISTRY:
            problems.append(f'val.metrics.{name}: type {kind!r} is not in METRIC_REGISTRY')
            continue
        if not _is_int(metric.get('crop_border'), 0):
            problems.append(f'val.metrics.{name}.crop_border: expected an integer >= 0, '
                            f"got {metric.get('crop_border')!r}")
        better = metric.get('better', 'higher')
        if better not in ('higher', 'lower') or (kind in NO_REFERENCE_METRICS and better != 'lower'):
            problems.append(f'val.metrics.{name}.better: {better!r} (NIQE: lower is better; write better: lower)')
        if without_gt and kind not in NO_REFERENCE_METRICS:
            problems.append(f'val.metrics.{name}: {kind} needs a ground truth, but {without_gt} have none and BasicSR '
                            'applies every metric to every set of a file (put those sets in a file of their own)')


def check_options(opt, train_file):
    """Everything wrong with parsed options ``opt``, as a list of messages."""
    problems = []
    _check_general(opt, problems)
    _check_network(opt, problems)
    _check_datasets(opt, train_file, problems)
    if train_file:
        _check_train(opt, problems)
    _check_paths(opt, train_file, problems)
    _check_val(opt, train_file, problems)
    problems.extend(_numbers_left_as_strings(opt, ''))
    return problems


# ---------------------------------------------------------------------------------------------- fixtures
def _write_images(folder, file_names, size, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for file_name in file_names:
        cv2.imwrite(str(folder / file_name), rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def point_datasets_at_fixtures(opt, root):
    """Replace every dataset root of ``opt`` by tiny random images: folders, or a fresh LMDB per root.

    Paired roots share the image names (and LMDB keys). Training patch sizes shrink to ``TINY_PATCH``, with the
    progressive ``gt_sizes`` scaled along (multiples of 8, at least 8).
    """
    for seed, (key, dataset) in enumerate(opt['datasets'].items()):
        size = PAIRED_SIZE if has_gt(dataset) else NO_REFERENCE_SIZE
        lmdb = (dataset.get('io_backend') or {}).get('type') == 'lmdb'
        dataset.pop('meta_info_file', None)  # the fixtures are found by scanning
        for root_key in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(root_key) is None:
                continue
            template = dataset.get('filename_tmpl', '{}') if root_key == 'dataroot_lq' and not lmdb else '{}'
            file_names = [f'{template.format(name)}.png' for name in fixture_names(dataset)]
            folder = root / key / root_key
            _write_images(folder, file_names, size, seed=2 * seed + (root_key == 'dataroot_lq'))
            if lmdb:
                lmdb_path = str(root / key / f'{root_key}.lmdb')
                make_lmdb_from_imgs(str(folder), lmdb_path, file_names, list(fixture_names(dataset)))
                dataset[root_key] = lmdb_path
            else:
                dataset[root_key] = str(folder)
        if dataset.get('phase') == 'train' and _is_int(dataset.get('gt_size'), 1):
            full = dataset['gt_size']
            dataset['gt_size'] = TINY_PATCH
            if dataset.get('gt_sizes'):
                dataset['gt_sizes'] = [min(TINY_PATCH, max(8, round(s * TINY_PATCH / full / 8) * 8))
                                       for s in dataset['gt_sizes']]
    return opt


def fixture_names(dataset_opt):
    return IMAGE_NAMES if has_gt(dataset_opt) else IMAGE_NAMES[:1]


def expected_size(dataset_opt):
    if dataset_opt['phase'] == 'train':
        return (TINY_PATCH, TINY_PATCH)
    return PAIRED_SIZE if has_gt(dataset_opt) else NO_REFERENCE_SIZE


# ------------------------------------------------------------------------------------------------- tests
@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny networks and images here run fastest on one thread, and far faster on a busy machine (OpenMP
    threads that wait for a core make a 0.25 s training step take seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_option_files_are_found():
    folders = {path.relative_to(OPTIONS_DIR).parts[0] for path in OPTION_FILES}
    assert {TRAIN_FOLDER, TEST_FOLDER} <= folders, f'no files under options/train or options/test: {OPTION_FILES}'


def test_every_training_recipe_has_a_test_file():
    missing = [option_id(p) for p in OPTION_FILES
               if option_id(p).startswith('train/') and not (OPTIONS_DIR / 'test' / p.name).exists()]
    assert not missing, f'training recipes without options/test/<same name>: {missing}'


@per_option_file
def test_options_are_sane(option_file, monkeypatch):
    opt = parse(option_file, monkeypatch)
    problems = check_options(opt, is_train_file(option_file))
    assert not problems, f'{option_id(option_file)}:\n  ' + '\n  '.join(problems)


def test_training_recipe_names_are_unique():
    names = [load_yaml(p).get('name') for p in OPTION_FILES if is_train_file(p)]
    assert len(set(names)) == len(names), f'training runs share experiments/<name>/: {sorted(names)}'


def trained_by(pretrain):
    """The training run (its ``name``) whose weights ``pretrain`` is: ``experiments/<name>/models/*.pth`` as
    train.py writes them, or ``experiments/pretrained_models/<name>.pth`` where they are copied."""
    parts = Path(pretrain).parts
    if len(parts) >= 3 and parts[-2] == 'models' and 'experiments' in parts:
        return parts[-3]
    return Path(pretrain).stem


@per_test_file
def test_test_file_matches_its_training_recipe(option_file):
    """The weights a test file loads come from a training recipe here: both must describe the same network."""
    opt = load_yaml(option_file)
    run = trained_by((opt.get('path') or {}).get('pretrain_network_g') or '')
    recipes = {load_yaml(p).get('name'): p for p in OPTION_FILES if is_train_file(p)}
    if run not in recipes:
        pytest.skip(f'no training option file here is named {run!r}')
    train_opt = load_yaml(recipes[run])
    assert opt['network_g'] == train_opt['network_g'], (
        f'{option_id(option_file)} and {option_id(recipes[run])} describe different networks')


@per_option_file
def test_datasets_build_on_tiny_fixtures(option_file, monkeypatch, tmp_path):
    opt = point_datasets_at_fixtures(parse(option_file, monkeypatch), tmp_path)
    for key, dataset_opt in opt['datasets'].items():
        dataset = build_dataset(dataset_opt)
        assert len(dataset) == len(fixture_names(dataset_opt)), key
        item = dataset[0]
        lq = item['lq']
        assert isinstance(lq, torch.Tensor) and lq.dtype == torch.float32, key
        assert tuple(lq.shape) == (3, *expected_size(dataset_opt)), f'{key}: lq {tuple(lq.shape)}'
        assert isinstance(item['lq_path'], str), key
        if has_gt(dataset_opt):
            assert tuple(item['gt'].shape) == tuple(lq.shape), f"{key}: gt {tuple(item['gt'].shape)}"
        else:
            assert 'gt' not in item, key


@per_option_file
def test_model_builds_and_runs(option_file, monkeypatch, tmp_path):
    """build_model with a shrunk network, then what train.py / test.py do: train steps and validation passes."""
    train_file = is_train_file(option_file)
    opt = point_datasets_at_fixtures(parse(option_file, monkeypatch), tmp_path / 'data')
    opt['num_gpu'] = 0
    opt['dist'] = False
    opt['root_path'] = str(tmp_path)
    for key in ('experiments_root', 'models', 'training_states', 'log', 'visualization', 'results_root'):
        if key in opt['path']:
            opt['path'][key] = str(tmp_path / 'out' / key)
    opt['network_g'].update(TINY_NETWORK)
    if opt['path'].get('pretrain_network_g') is not None:  # the file's weights, as a tiny checkpoint
        checkpoint = tmp_path / 'tiny.pth'
        tiny = build_network(opt['network_g'])
        torch.save({opt['path'].get('param_key_g', 'params'): tiny.state_dict()}, checkpoint)
        opt['path']['pretrain_network_g'] = str(checkpoint)

    model = build_model(opt)

    if train_file:
        train_opt, dataset_opt = opt['train'], opt['datasets']['train']
        assert type(model.optimizers[0]).__name__ == train_opt['optim_g']['type']
        dataset = build_dataset(dataset_opt)
        batch = default_collate([dataset[i % len(dataset)] for i in range(dataset_opt['batch_size_per_gpu'])])
        for current_iter in (1, train_opt['total_iter']):  # first and last progressive stage
            model.update_learning_rate(current_iter, warmup_iter=train_opt.get('warmup_iter', -1))
            if current_iter == 1:
                assert model.get_current_learning_rate()[0] == pytest.approx(train_opt['optim_g']['lr'])
            model.feed_data(batch)
            model.optimize_parameters(current_iter)
            log = model.get_current_log()
            assert log and all(math.isfinite(float(v)) for v in log.values()), log

    current_iter = 1 if train_file else opt['name']  # what train.py / test.py pass
    save_img = bool(opt['val'].get('save_img', False)) if opt.get('val') else False
    for key, dataset_opt in opt['datasets'].items():
        if dataset_opt['phase'] == 'train':
            continue
        dataset = build_dataset(dataset_opt)
        loader = build_dataloader(dataset, dataset_opt, num_gpu=0, dist=False, sampler=None, seed=opt['manual_seed'])
        model.validation(loader, current_iter, None, save_img)
        metrics = (opt.get('val') or {}).get('metrics')
        if metrics:
            results = model.metric_results
            assert set(results) == set(metrics), key
            assert all(math.isfinite(v) for v in results.values()), f'{key}: {results}'
        if save_img and not train_file:
            saved = list((Path(opt['path']['visualization']) / dataset_opt['name']).glob('*.png'))
            assert len(saved) == len(fixture_names(dataset_opt)), f'{key}: saved {saved}'
