"""The variant study: ``official`` against ``refined`` HINT, one recipe and budget, several seeds, two tasks.

``python studies/variant_study.py`` trains every (task, variant, seed) with ``tools/train.py`` on data built from
the photographs bundled with scikit-image, and reports the held-out PSNR and SSIM that BasicSR's validation
logs after the last iteration: per run, and the mean and spread per task and variant.

Tasks (the same photos as ``make demo``: ``tools/demo.py``):

* ``denoise``: the demo's blind Gaussian colour denoising (training sigma in [0, 50], held-out sigma 25);
* ``lowlight``: synthetic low light, ``lq = gain * gt ** gamma + read noise`` rounded to 8 bits, with
  ``gamma`` in [2, 3] and ``gain`` in [0.4, 0.7] drawn per image from a generator seeded by its name, trained
  on lq/gt LMDBs (``tools/create_lmdb.py --layout lolv2-synthetic``) through ``CheckedPairedImageDataset``.

Every run uses the demo's recipe (``options/demo/HINT_demo_denoise.yml``: network, optimiser, losses,
progressive patches), with ``--iters`` iterations and ``manual_seed`` = the seed; only ``variant`` differs
between the two arms. Outputs: ``results/variant_study/summary.md`` and ``summary.json``, one log per run in
``results/variant_study/logs/``, option files in ``results/variant_study/options/``.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from os import path as osp

import hint_plugin  # noqa: F401  (before any basicsr import: it aliases a torchvision module BasicSR imports)
import cv2
import numpy as np


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_demo():
    """This checkout's ``tools/demo.py`` as a module: the study builds on its photos, recipe and helpers."""
    module_spec = importlib.util.spec_from_file_location('hint_demo', osp.join(REPO, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # before running it, as an import would (its dataclasses look it up)
    module_spec.loader.exec_module(module)
    return module


demo = load_demo()

VARIANTS = ('official', 'refined')  # the default arms; an arm may also name a cache_init: 'refined+zeros'
CACHE_INITS = ('carry', 'zeros', 'none')
TASKS = ('denoise', 'lowlight')
RESULTS_DIR = 'results/variant_study'
LOWLIGHT_DIR = 'datasets/variant_study/lowlight'
GAMMA_RANGE = (2.0, 3.0)
GAIN_RANGE = (0.4, 0.7)
READ_NOISE = 2.0  # standard deviation on the 0-255 scale
DEFAULT_ITERS = 400
QUICK_ITERS = 4


@dataclass
class Run:
    """One training run and what its final validation logged."""
    task: str
    variant: str
    seed: int
    name: str
    psnr: float = float('nan')
    ssim: float = float('nan')
    seconds: float = float('nan')


# ------------------------------------------------------------------------------------------------ data
def darken(image, name):
    """The synthetic low-light version of an 8-bit BGR ``image``, drawn from a generator seeded by ``name``."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    gamma, gain = rng.uniform(*GAMMA_RANGE), rng.uniform(*GAIN_RANGE)
    dark = gain * (image.astype(np.float64) / 255.) ** gamma * 255. + rng.normal(0, READ_NOISE, image.shape)
    return np.clip(np.rint(dark), 0, 255).astype(np.uint8)


def write_lowlight_pairs(source, target):
    """``target/Low/X.png`` (dark) and ``target/Normal/X.png`` (clean) for every image ``source/X.png``."""
    low, normal = {}, {}
    for filename in sorted(os.listdir(source)):
        name = osp.splitext(filename)[0]
        normal[name] = cv2.imread(osp.join(source, filename), cv2.IMREAD_COLOR)
        low[name] = darken(normal[name], name)
    demo.replace_images(low, osp.join(target, 'Low'))
    demo.replace_images(normal, osp.join(target, 'Normal'))


def prepare_data(workdir, tasks):
    """The demo's denoising data (always: the low-light pairs are made from its tiles and photos) and, for
    ``lowlight``, the paired training LMDBs and the held-out pair folders."""
    demo.prepare_datasets(workdir)
    if 'lowlight' in tasks:
        root = osp.join(workdir, LOWLIGHT_DIR)
        write_lowlight_pairs(osp.join(workdir, demo.TRAIN_TILE_DIR), osp.join(root, 'train'))
        write_lowlight_pairs(osp.join(workdir, demo.HELDOUT_DIR), osp.join(root, 'val'))
        demo.run_tool('create_lmdb.py', ['--layout', 'lolv2-synthetic', '--input', osp.join(root, 'train'),
                                         '--output', osp.join(root, 'train'), '--overwrite'], workdir)


# --------------------------------------------------------------------------------------------- options
def lowlight_datasets(train_set):
    """The demo's training set options turned into the low-light pairs (same patches and batches)."""
    keep = ('gt_size', 'use_hflip', 'use_rot', 'mini_batch_sizes', 'iters', 'gt_sizes', 'num_worker_per_gpu',
            'batch_size_per_gpu', 'dataset_enlarge_ratio', 'prefetch_mode')
    train = dict(name='skimage_tiles_lowlight', type='CheckedPairedImageDataset',
                 dataroot_lq=f'{LOWLIGHT_DIR}/train/lq.lmdb', dataroot_gt=f'{LOWLIGHT_DIR}/train/gt.lmdb',
                 filename_tmpl='{}', io_backend={'type': 'lmdb'}, **{key: train_set[key] for key in keep})
    val = dict(name='skimage_photos_heldout_lowlight', type='CheckedPairedImageDataset',
               dataroot_lq=f'{LOWLIGHT_DIR}/val/Low', dataroot_gt=f'{LOWLIGHT_DIR}/val/Normal',
               filename_tmpl='{}', io_backend={'type': 'disk'})
    return {'train': train, 'val': val}


def parse_arm(arm):
    """``'refined'`` -> ``{'variant': 'refined'}``; ``'refined+zeros'`` adds ``cache_init: zeros``."""
    variant, _, cache_init = arm.partition('+')
    if variant not in VARIANTS or (cache_init and cache_init not in CACHE_INITS):
        raise argparse.ArgumentTypeError(f'{arm!r}: expected VARIANT[+CACHE_INIT], VARIANT one of {VARIANTS}, '
                                         f'CACHE_INIT one of {CACHE_INITS}')
    return dict(variant=variant, **({'cache_init': cache_init} if cache_init else {}))


def run_options(base, task, variant, seed, iters, quick=False):
    """The demo recipe ``base`` (training options) for one run: ``iters`` iterations, the arm ``variant``
    (``VARIANT[+CACHE_INIT]``), ``seed``."""
    options = json.loads(json.dumps(base))  # a deep copy
    options['name'] = f'HINT_study_{task}_{variant.replace("+", "_")}_s{seed}' + ('_quick' if quick else '')
    options['manual_seed'] = seed
    options['network_g'] = dict(options['network_g'], **parse_arm(variant), **(demo.QUICK_NETWORK if quick else {}))
    if task == 'lowlight':
        options['datasets'] = lowlight_datasets(options['datasets']['train'])
    train_set = options['datasets']['train']
    stages = train_set['iters']  # progressive stages keep their share of the iterations
    first = [round(iters * stage / sum(stages)) for stage in stages[:-1]]
    train_set['iters'] = first + [iters - sum(first)]
    if quick:
        train_set.update(gt_size=32, batch_size_per_gpu=2, mini_batch_sizes=[2] * len(stages),
                         gt_sizes=[32] * len(stages))
    options['train']['total_iter'] = iters
    options['train']['scheduler'] = dict(options['train']['scheduler'], periods=[iters], restart_weights=[1])
    options['val'] = dict(options['val'], val_freq=10 * iters, save_img=False)  # BasicSR validates at the end
    options['logger'] = dict(options['logger'], save_checkpoint_freq=iters, print_freq=max(1, iters // 8))
    return options


# ------------------------------------------------------------------------------------------------ runs
def train_one(run, options_path, log_path, workdir, threads):
    """``tools/train.py -opt options_path`` in ``workdir`` with ``threads`` torch threads; fills ``run``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
    start = time.time()
    with open(log_path, 'w') as log:
        result = subprocess.run([sys.executable, osp.join(demo.REPO, 'tools', 'train.py'), '-opt', options_path],
                                cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    run.seconds = time.time() - start
    with open(log_path) as log:
        output = log.read()
    if result.returncode != 0:
        raise demo.DemoError(f'{run.name} failed (exit {result.returncode}); see {log_path}')
    val_name = demo.load_yaml(options_path)['datasets']['val']['name']
    try:
        logged = demo.logged_metrics(output, val_name)
    except demo.DemoError as error:
        raise demo.DemoError(f'{run.name}: {error}; see {log_path}') from None
    run.psnr, run.ssim = logged['psnr'], logged['ssim']
    return run


def summarise(runs):
    """``{task: {variant: {'psnr': (mean, std), 'ssim': (mean, std), 'n': count}}}`` (std with ddof 1)."""
    summary = {}
    for run in runs:
        summary.setdefault(run.task, {}).setdefault(run.variant, []).append(run)
    for task, variants in summary.items():
        for variant, group in variants.items():
            stats = {'n': len(group)}
            for metric in ('psnr', 'ssim'):
                values = [getattr(run, metric) for run in group]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                stats[metric] = (statistics.fmean(values), spread)
            variants[variant] = stats
    return summary


def format_summary(runs, summary):
    """Markdown: the mean (and standard deviation over seeds) per task and variant, then every run."""
    lines = ['| task | variant | seeds | PSNR (dB) mean ± std | SSIM mean ± std |', '|---|---|---:|---:|---:|']
    for task, variants in summary.items():
        for variant, stats in variants.items():
            lines.append(f'| {task} | {variant} | {stats["n"]} | {stats["psnr"][0]:.2f} ± {stats["psnr"][1]:.2f} '
                         f'| {stats["ssim"][0]:.4f} ± {stats["ssim"][1]:.4f} |')
    lines += ['', '| run | PSNR (dB) | SSIM | training time (s) |', '|---|---:|---:|---:|']
    lines += [f'| {run.name} | {run.psnr:.2f} | {run.ssim:.4f} | {run.seconds:.0f} |' for run in runs]
    return '\n'.join(lines)


def run_study(workdir='.', tasks=TASKS, seeds=(0, 1, 2), iters=DEFAULT_ITERS, jobs=1, threads=None, quick=False,
              arms=VARIANTS):
    """Train every (task, arm, seed), ``jobs`` at a time; write and return the summary files' paths."""
    workdir = osp.abspath(workdir)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    results = osp.join(workdir, RESULTS_DIR)
    for folder in ('options', 'logs'):
        os.makedirs(osp.join(results, folder), exist_ok=True)
    demo.step('Data: the demo photos, and their low-light pairs' if 'lowlight' in tasks else 'Data: the demo photos')
    prepare_data(workdir, tasks)

    base = demo.load_yaml(demo.TRAIN_OPTIONS)
    work = []
    for task in tasks:
        for seed in seeds:
            for variant in arms:
                options = run_options(base, task, variant, seed, iters, quick)
                run = Run(task, variant, seed, options['name'])
                options_path = demo.write_yaml(options, osp.join(results, 'options', f'{run.name}.yml'))
                work.append((run, options_path, osp.join(results, 'logs', f'{run.name}.log')))
    demo.step(f'Training {len(work)} runs of {iters} iterations, {jobs} at a time, {threads} threads each')

    def train_and_report(item):
        run = train_one(*item, workdir, threads)
        print(f'  {run.name}: PSNR {run.psnr:.2f} dB, SSIM {run.ssim:.4f} ({run.seconds:.0f} s)', flush=True)
        return run

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = list(pool.map(train_and_report, work))

    summary = summarise(runs)
    table = format_summary(runs, summary)
    command = (f'python studies/variant_study.py --tasks {" ".join(tasks)} --seeds {" ".join(map(str, seeds))} '
               f'--iters {iters} --jobs {jobs} --threads {threads}' + (' --quick' if quick else '')
               + ('' if tuple(arms) == VARIANTS else f' --arms {" ".join(arms)}'))
    markdown = osp.join(results, 'summary.md')
    with open(markdown, 'w') as f:
        f.write(f'# {" vs ".join(arms)} HINT\n\n`{command}`\n\n{table}\n')
    data = osp.join(results, 'summary.json')
    with open(data, 'w') as f:
        json.dump({'command': command, 'summary': summary, 'runs': [asdict(run) for run in runs]}, f, indent=1)
    print(f'\n{table}\n\nSummary: {demo.rel(markdown)}, {demo.rel(data)}')
    return markdown, data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train the official and the refined HINT variant with the demo recipe on synthetic tasks made '
        "from scikit-image's photographs (blind denoising, low light), for several seeds, and report the held-out "
        'PSNR/SSIM mean and spread. Writes datasets/, experiments/ and results/variant_study/ under --workdir.')
    parser.add_argument('--tasks', nargs='+', choices=TASKS, default=list(TASKS), help='default: both')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='default: 0 1 2')
    parser.add_argument('--arms', nargs='+', default=list(VARIANTS), metavar='VARIANT[+CACHE_INIT]',
                        help='what to compare (default: official refined); e.g. refined refined+zeros compares '
                             "refined's first attention block without and with a zero inter-layer cache")
    parser.add_argument('--iters', type=int, default=None,
                        help=f'training iterations per run (default: {DEFAULT_ITERS}; --quick: {QUICK_ITERS})')
    parser.add_argument('--jobs', type=int, default=1, help='runs at a time (default: 1)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads per run (default: CPU cores / jobs)')
    parser.add_argument('--workdir', default='.', help='folder for the data and outputs (default: the current one)')
    parser.add_argument('--quick', action='store_true', help='a tiny network: checks the pipeline (the tests)')
    args = parser.parse_args(argv)
    for arm in args.arms:
        try:
            parse_arm(arm)
        except argparse.ArgumentTypeError as error:
            parser.error(f'--arms: {error}')
    if args.iters is None:
        args.iters = QUICK_ITERS if args.quick else DEFAULT_ITERS
    for name in ('iters', 'jobs', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be at least 1, got {value}')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        run_study(args.workdir, tuple(args.tasks), tuple(args.seeds), args.iters, args.jobs, args.threads,
                  args.quick, tuple(args.arms))
    except demo.DemoError as err:
        sys.exit(f'variant_study.py: error: {err}')


if __name__ == '__main__':
    main()
