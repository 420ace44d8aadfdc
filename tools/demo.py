"""``python tools/demo.py`` (``make demo``): train HINT through BasicSR on scikit-image's photographs and compare it
with non-local means.

It runs the product end to end on a CPU (about 9 minutes on 2 cores), in five steps, one function each:

1. :func:`prepare_datasets` copies colour photographs that ship inside scikit-image into ``datasets/demo/``:
   the training photos, cut in tiles, as an LMDB of clean images (``tools/create_lmdb.py``), the held-out
   photos (other ones) as a folder.
2. :func:`choose_nlm_strength` picks the strength ``h`` of OpenCV's non-local means (NLM) for sigma 25: the
   best of a sweep on the *training* photos.
3. :func:`train` runs ``tools/train.py`` with ``options/demo/HINT_demo_denoise.yml`` (BasicSR's log streams
   to the console).
4. :func:`evaluate` runs ``tools/test.py`` with ``options/demo/HINT_demo_denoise_test.yml`` and scores the
   noisy input, NLM and HINT on the same noisy images with BasicSR's ``calculate_psnr``/``calculate_ssim``.
5. The figure and the table (section "5." below: :func:`write_figure`, :func:`format_table`,
   :func:`write_report`): ``results/demo/comparison.png`` (noisy | NLM | HINT | clean crops) and
   ``results/demo/metrics.md``.

Everything is written under the working folder (``--workdir``, default: the current one): ``datasets/demo/``,
``experiments/``, ``results/``. A re-run keeps the LMDB when it holds the same tiles; BasicSR renames the
previous ``experiments/<name>`` and ``results/<name>`` folders. ``--quick`` runs the same steps with a tiny
network for a few iterations (for the tests); its option files are written to ``results/demo/quick_options/``.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from os import path as osp
from typing import Dict, Optional

import hint_plugin  # noqa: F401  (before any basicsr import: it aliases a torchvision module BasicSR imports)
import cv2
import numpy as np
import skimage.data
import yaml
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img

from hint_plugin.data.gaussian_noise_dataset import GaussianNoiseDataset
from hint_plugin.utils.image_io import crop_center
from hint_plugin.utils.option_yaml import OptionDumper
from hint_plugin.utils.options import read_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPTIONS = osp.join(REPO, 'options', 'demo', 'HINT_demo_denoise.yml')
TEST_OPTIONS = osp.join(REPO, 'options', 'demo', 'HINT_demo_denoise_test.yml')

# Colour photographs bundled with scikit-image (files in skimage.data.data_dir, read without pooch), by the
# name they get here. Never the same photo on both sides: the stereo pair stays together in training, and
# skimage's `cat` is the same file as `chelsea`.
TRAIN_PHOTOS = {
    'astronaut': 'astronaut.png',
    'coffee': 'coffee.png',
    'motorcycle_left': 'motorcycle_left.png',
    'motorcycle_right': 'motorcycle_right.png',
    'immunohistochemistry': 'ihc.png',
}
HELDOUT_PHOTOS = {
    'chelsea': 'chelsea.png',
    'rocket': 'rocket.jpg',
}
TRAIN_PHOTO_DIR = 'datasets/demo/train_photos'  # whole photos: the non-local means sweep
TRAIN_TILE_DIR = 'datasets/demo/train_tiles'  # the photos in tiles: input of tools/create_lmdb.py
TRAIN_LMDB_DIR = 'datasets/demo/train'  # -> datasets/demo/train/gt.lmdb
HELDOUT_DIR = 'datasets/demo/val'
TRAIN_TILE = 128  # the loader decodes a whole image per patch: a tile costs 1 ms, a whole photo 10 to 20 ms
LMDB_COMPRESS_LEVEL = 0  # PNG without compression: decoding costs 2.5 times less than at level 1
RESULTS_DIR = 'results/demo'

SIGMA = 25  # the evaluation noise level (0-255 scale); it must match the test options' sigma_test
NLM_STRENGTHS = (8, 10, 12, 14, 16, 18, 20, 22, 24)  # h = hColor, swept on the training photos
NLM_SWEEP_CROP = 256  # the sweep scores central crops of this size (NLM costs about 1 s per 512x512 image)
NLM_TEMPLATE_WINDOW, NLM_SEARCH_WINDOW = 7, 21  # OpenCV's defaults

# The figure: one row per held-out photo, four labelled panels per row (a zoomed crop each).
METHODS = ('noisy', 'nlm', 'hint')
COLUMNS = ('noisy', 'nlm', 'hint', 'clean')
CROP = 128
ZOOM = 2
PANEL = CROP * ZOOM
LABEL_HEIGHT = 28
GAP = 6

# --quick: the same pipeline with a tiny network and a few iterations (tests/test_demo.py).
QUICK_NETWORK = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)
QUICK_ITERS = 6
QUICK_NLM_STRENGTHS = (12, 18)


class DemoError(RuntimeError):
    """A step of the demo (or of the variant study, which runs the demo's steps) failed; the message says which
    and why."""


@dataclass
class Photo:
    """One held-out photo, all as 8-bit BGR images of one size, and its scores per method."""
    name: str
    clean: np.ndarray
    noisy: np.ndarray  # the noisy input, clipped to [0, 255] and rounded (what NLM gets and 'noisy' scores)
    nlm: Optional[np.ndarray] = None
    hint: Optional[np.ndarray] = None
    scores: Dict[str, Dict[str, float]] = field(default_factory=dict)  # method -> {'psnr': .., 'ssim': ..}


# ------------------------------------------------------------------------------------------------- helpers
def step(title):
    """Print a short header for the next step of the demo."""
    print(f'\n==> {title}', flush=True)


def rel(path):
    """``path`` relative to the current folder when it lies below it (for short messages), else absolute."""
    relative = osp.relpath(path)
    return path if relative.startswith('..') else relative


def load_yaml(path):
    """The option file ``path``, read as every entry point reads one (safe YAML, no duplicate keys)."""
    return read_options(path)


def write_yaml(options, path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        yaml.dump(options, f, Dumper=OptionDumper, sort_keys=False)
    return path


def shown_command(cmd, workdir):
    """``cmd`` as a shell line, with paths relative to the current folder where shorter."""
    line = shlex.join(rel(arg) if osp.isabs(arg) else arg for arg in cmd)
    return line if osp.samefile(workdir, os.getcwd()) else f'(cd {shlex.quote(rel(workdir))} && {line})'


def run_tool(script, args, workdir):
    """Run ``tools/<script>`` with this Python in ``workdir``, echo its output live, and return that output.

    The network structure BasicSR logs (hundreds of lines) is left out of the echo; it stays in the returned
    output and in BasicSR's log file.

    Raises:
        DemoError: the tool exited with an error.
    """
    cmd = [sys.executable, osp.join(REPO, 'tools', script), *args]
    print('$ ' + shown_command(cmd, workdir), flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    process = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, in_network = [], False
    for raw in process.stdout:  # bytes, split at '\n' only: progress bars redraw with '\r' inside a line
        line = raw.decode(errors='replace')
        lines.append(line)
        if in_network:
            in_network = line.rstrip() != ')'
            continue
        if re.search(r'INFO: \w+\($', line.rstrip()):  # "<time> INFO: HINT(" opens the structure
            in_network = True
            line = line.rstrip()[:-1] + '... (network structure: see the log file)\n'
        sys.stdout.write(line)
        sys.stdout.flush()
    if process.wait() != 0:
        raise DemoError(f'tools/{script} failed with exit code {process.returncode} (its output is above)')
    return ''.join(lines)


def score(image, clean):
    """PSNR (dB) and SSIM of an 8-bit image against the clean one: BasicSR's metrics, RGB, no border crop."""
    return {
        'psnr': float(calculate_psnr(image, clean, crop_border=0, input_order='HWC', test_y_channel=False)),
        'ssim': float(calculate_ssim(image, clean, crop_border=0, input_order='HWC', test_y_channel=False)),
    }


def denoise_nlm(noisy, strength):
    """OpenCV's non-local means on an 8-bit BGR image, with ``h = hColor = strength``."""
    return cv2.fastNlMeansDenoisingColored(noisy, None, strength, strength, NLM_TEMPLATE_WINDOW, NLM_SEARCH_WINDOW)


# ------------------------------------------------------------------------------------------ 1. the data
def read_bundled_photo(filename):
    """A photo from scikit-image's own data folder as 8-bit BGR (no download: only bundled files)."""
    path = osp.join(skimage.data.data_dir, filename)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DemoError(f'{path} is missing: scikit-image should ship it (is scikit-image installed?)')
    return image


def tiles(image, size):
    """``size`` x ``size`` tiles covering ``image`` on a grid (the last row and column flush with its edges)."""
    height, width = image.shape[:2]

    def starts(length):
        return sorted(set(range(0, length - size + 1, size)) | {length - size})

    return [image[top:top + size, left:left + size] for top in starts(height) for left in starts(width)]


def replace_images(images, folder):
    """Write ``{name: image}`` as ``folder/<name>.png``, removing any other file there."""
    os.makedirs(folder, exist_ok=True)
    for stale in os.listdir(folder):
        if osp.splitext(stale)[0] not in images:
            os.remove(osp.join(folder, stale))
    for name, image in images.items():
        cv2.imwrite(osp.join(folder, f'{name}.png'), image)


def lmdb_matches(lmdb_path, photo_dir):
    """Whether ``lmdb_path`` holds exactly the images of ``photo_dir`` (by its ``meta_info.txt``: names, sizes
    and PNG compression level)."""
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta) or not osp.isfile(osp.join(lmdb_path, 'data.mdb')):
        return False
    with open(meta) as f:
        listed = {line.strip() for line in f if line.strip()}
    expected = set()
    for filename in os.listdir(photo_dir):
        height, width, channels = cv2.imread(osp.join(photo_dir, filename)).shape
        expected.add(f'{osp.splitext(filename)[0]}.png ({height},{width},{channels}) {LMDB_COMPRESS_LEVEL}')
    return listed == expected


def prepare_datasets(workdir, train_photos=None, heldout_photos=None):
    """Step 1: the training LMDB and the held-out folder under ``workdir/datasets/demo/``.

    * ``train_photos/``: the whole training photos (where non-local means is tuned);
    * ``train_tiles/``: the same photos cut into ``TRAIN_TILE`` tiles, which ``tools/create_lmdb.py --layout
      single`` turns into ``train/gt.lmdb`` (kept on a re-run when it already holds these tiles, rebuilt with
      ``--overwrite`` otherwise). Tiles, because the loader decodes a whole image for every training patch;
    * ``val/``: the held-out photos, read from the folder by the validation and test sets.

    Args:
        train_photos, heldout_photos (dict): ``{name: file in skimage.data.data_dir}``; default
            ``TRAIN_PHOTOS`` and ``HELDOUT_PHOTOS``. No file may be on both sides.

    Returns:
        dict: ``train`` and ``heldout``: the photo names.
    """
    train_photos = TRAIN_PHOTOS if train_photos is None else train_photos
    heldout_photos = HELDOUT_PHOTOS if heldout_photos is None else heldout_photos
    shared = set(train_photos.values()) & set(heldout_photos.values())
    if shared:
        raise DemoError(f'photos both in training and held out: {sorted(shared)}')
    train_images = {name: read_bundled_photo(filename) for name, filename in train_photos.items()}
    replace_images(train_images, osp.join(workdir, TRAIN_PHOTO_DIR))
    replace_images({f'{name}_{i:02d}': tile for name, image in train_images.items()
                    for i, tile in enumerate(tiles(image, TRAIN_TILE))}, osp.join(workdir, TRAIN_TILE_DIR))
    replace_images({name: read_bundled_photo(filename) for name, filename in heldout_photos.items()},
                   osp.join(workdir, HELDOUT_DIR))

    tile_dir, lmdb_dir = osp.join(workdir, TRAIN_TILE_DIR), osp.join(workdir, TRAIN_LMDB_DIR)
    lmdb_path = osp.join(lmdb_dir, 'gt.lmdb')
    if lmdb_matches(lmdb_path, tile_dir):
        print(f'{rel(lmdb_path)} already holds these training tiles: kept')
    else:
        run_tool('create_lmdb.py', ['--layout', 'single', '--input', tile_dir, '--output', lmdb_dir,
                                    '--compress-level', str(LMDB_COMPRESS_LEVEL), '--overwrite'], workdir)
    names = {'train': sorted(train_photos), 'heldout': sorted(heldout_photos)}
    print(f'training photos ({len(os.listdir(tile_dir))} tiles of {TRAIN_TILE}x{TRAIN_TILE} in {rel(lmdb_path)}): '
          f'{", ".join(names["train"])}')
    print(f'held-out photos ({rel(osp.join(workdir, HELDOUT_DIR))}): {", ".join(names["heldout"])}')
    return names


def noisy_photos(dataset_options, workdir, folder=None):
    """The clean and noisy images of a test set, built by ``GaussianNoiseDataset`` with ``dataset_options``.

    These are the noisy images tools/test.py gives HINT (same dataset, options and per-image seed); they are
    returned as 8-bit BGR, clipped and rounded by BasicSR's ``tensor2img`` (NLM needs 8 bits).

    Args:
        dataset_options (dict): a test dataset of the test options (``dataroot_gt`` relative to ``workdir``).
        folder (str, optional): read these clean images instead of ``dataroot_gt`` (same noise settings).

    Returns:
        list[Photo]: sorted by name.
    """
    options = dict(dataset_options, phase='test')
    options['dataroot_gt'] = osp.join(workdir, folder or options['dataroot_gt'])
    dataset = GaussianNoiseDataset(options)
    photos = []
    for item in dataset:
        name = osp.splitext(osp.basename(item['gt_path']))[0]
        photos.append(Photo(name, clean=tensor2img(item['gt']), noisy=tensor2img(item['lq'])))
    return photos


# ------------------------------------------------------------------------------------ 2. the NLM baseline
def choose_nlm_strength(photos, strengths):
    """Step 2: the ``h`` of :func:`denoise_nlm` with the best mean PSNR on ``photos`` (central crops).

    Returns:
        tuple: (best strength, ``{strength: mean PSNR}``).
    """
    crops = [(crop_center(p.noisy, NLM_SWEEP_CROP), crop_center(p.clean, NLM_SWEEP_CROP)) for p in photos]
    sweep = {}
    for strength in strengths:
        sweep[strength] = float(np.mean([score(denoise_nlm(noisy, strength), clean)['psnr'] for noisy, clean in crops]))
        print(f'  h = {strength:2d}: mean PSNR {sweep[strength]:.2f} dB')
    best = max(sweep, key=sweep.get)
    print(f'best h = {best}')
    return best, sweep


# ---------------------------------------------------------------------------------------- 3. training
def quick_options(train_options, test_options, workdir):
    """``--quick``: copies of the option files with a tiny network and a few iterations, under results/demo/.

    Returns:
        tuple: paths of the train and test option files.
    """
    train, test = dict(train_options), dict(test_options)
    name = train['name'] + '_quick'
    network = dict(train['network_g'], **QUICK_NETWORK)
    dataset = dict(train['datasets']['train'], gt_size=32, batch_size_per_gpu=2,
                   mini_batch_sizes=[2, 2], iters=[QUICK_ITERS // 2, QUICK_ITERS // 2], gt_sizes=[24, 32])
    train.update(name=name, network_g=network, datasets=dict(train['datasets'], train=dataset))
    train['train'] = dict(train['train'], total_iter=QUICK_ITERS,
                          scheduler=dict(train['train']['scheduler'], periods=[QUICK_ITERS], restart_weights=[1],
                                         eta_mins=[1e-6]))
    train['val'] = dict(train['val'], val_freq=10 * QUICK_ITERS)  # only BasicSR's validation after training
    train['logger'] = dict(train['logger'], print_freq=1, save_checkpoint_freq=QUICK_ITERS)
    test.update(name=name, network_g=network,
                path=dict(test['path'], pretrain_network_g=f'experiments/{name}/models/net_g_latest.pth'))
    folder = osp.join(workdir, RESULTS_DIR, 'quick_options')
    return (write_yaml(train, osp.join(folder, 'HINT_demo_denoise_quick.yml')),
            write_yaml(test, osp.join(folder, 'HINT_demo_denoise_quick_test.yml')))


def train(train_options_path, workdir):
    """Step 3: ``tools/train.py -opt ...`` in ``workdir``.

    Returns:
        tuple: (path of the trained weights, ``net_g_latest.pth``; training wall time in seconds).
    """
    start = time.time()
    run_tool('train.py', ['-opt', train_options_path], workdir)
    seconds = time.time() - start
    name = load_yaml(train_options_path)['name']
    weights = osp.join(workdir, 'experiments', name, 'models', 'net_g_latest.pth')
    if not osp.isfile(weights):
        raise DemoError(f'training ended without writing {weights}')
    return weights, seconds


# -------------------------------------------------------------------------------------- 4. evaluation
def logged_metrics(output, dataset_name):
    """The mean metrics BasicSR logs after ``Validation <dataset_name>``: ``{'psnr': .., 'ssim': ..}``."""
    block = re.search(rf'Validation {re.escape(dataset_name)}\n((?:\s*# \w+: [-\d.]+.*\n?)+)', output)
    if block is None:
        raise DemoError(f'tools/test.py logged no validation result for {dataset_name}')
    return {name: float(value) for name, value in re.findall(r'# (\w+): ([-\d.]+)', block.group(1))}


def hint_outputs(test_options, dataset_name, workdir):
    """Folder and file name pattern of the images tools/test.py saved (``<image>_<suffix or name>.png``)."""
    folder = osp.join(workdir, 'results', test_options['name'], 'visualization', dataset_name)
    suffix = test_options['val'].get('suffix') or test_options['name']
    return folder, f'{{}}_{suffix}.png'


def evaluate(test_options_path, nlm_strength, workdir):
    """Step 4: tools/test.py on the held-out photos, then noisy / NLM / HINT scores per photo.

    HINT's per-image scores are computed from the images tools/test.py saved, and their mean is checked
    against the mean it logged.

    Returns:
        tuple: (list[Photo] with images and scores, ``{'psnr', 'ssim'}`` logged by tools/test.py).
    """
    test_options = load_yaml(test_options_path)
    dataset = test_options['datasets']['test_1']
    if float(dataset['sigma_test']) != SIGMA:
        raise DemoError(f'{test_options_path}: sigma_test is {dataset["sigma_test"]}, the demo evaluates at {SIGMA}')
    output = run_tool('test.py', ['-opt', test_options_path], workdir)
    logged = logged_metrics(output, dataset['name'])

    folder, pattern = hint_outputs(test_options, dataset['name'], workdir)
    photos = noisy_photos(dataset, workdir)
    for photo in photos:
        photo.nlm = denoise_nlm(photo.noisy, nlm_strength)
        photo.hint = cv2.imread(osp.join(folder, pattern.format(photo.name)), cv2.IMREAD_COLOR)
        if photo.hint is None:
            raise DemoError(f'tools/test.py saved no {pattern.format(photo.name)} in {folder}')
        photo.scores = {method: score(getattr(photo, method), photo.clean) for method in METHODS}
    for metric, value in logged.items():
        mean = np.mean([photo.scores['hint'][metric] for photo in photos])
        if abs(mean - value) > 1e-3:
            raise DemoError(f'HINT mean {metric} from the saved images ({mean:.4f}) differs from the one '
                            f'tools/test.py logged ({value:.4f})')
    return photos, logged


# ------------------------------------------------------------------------------- 5. the figure and table
def figure_layout(rows):
    """Size of the comparison figure and the top-left corner of each panel.

    Each row has four ``PANEL`` x ``PANEL`` panels (``COLUMNS``), each under a ``LABEL_HEIGHT`` label strip,
    with ``GAP`` pixels around everything.

    Returns:
        tuple: ((height, width), ``{(row, column): (top, left)}``).
    """
    row_height = LABEL_HEIGHT + PANEL + GAP
    size = (GAP + rows * row_height, GAP + len(COLUMNS) * (PANEL + GAP))
    corners = {(row, col): (GAP + row * row_height + LABEL_HEIGHT, GAP + col * (PANEL + GAP))
               for row in range(rows) for col in range(len(COLUMNS))}
    return size, corners


def panel_image(image):
    """The central ``CROP`` x ``CROP`` crop of an 8-bit image, zoomed ``ZOOM`` times (pixel replication)."""
    crop = crop_center(image, CROP)
    return cv2.resize(crop, (crop.shape[1] * ZOOM, crop.shape[0] * ZOOM), interpolation=cv2.INTER_NEAREST)


def panel_label(photo, column, nlm_strength):
    """The text above a panel: the method and its PSNR, or the photo's name over the clean crop."""
    if column == 'clean':
        return f'clean: {photo.name}'
    title = {'noisy': f'noisy (sigma {SIGMA})', 'nlm': f'NLM (h={nlm_strength})', 'hint': 'HINT'}[column]
    return f'{title} {photo.scores[column]["psnr"]:.2f} dB'


def draw_label(canvas, text, top, left, width):
    """Black text in the ``LABEL_HEIGHT`` strip at (top, left), scaled down to fit ``width`` if needed."""
    font, thickness, scale = cv2.FONT_HERSHEY_SIMPLEX, 1, 0.55
    while cv2.getTextSize(text, font, scale, thickness)[0][0] > width - 8 and scale > 0.3:
        scale -= 0.05
    (_, text_height), _ = cv2.getTextSize(text, font, scale, thickness)
    baseline_y = top + (LABEL_HEIGHT + text_height) // 2
    cv2.putText(canvas, text, (left + 4, baseline_y), font, scale, (0, 0, 0), thickness, cv2.LINE_AA)


def write_figure(photos, nlm_strength, path):
    """``comparison.png``: per held-out photo, labelled crops noisy | NLM | HINT | clean (white background)."""
    (height, width), corners = figure_layout(len(photos))
    canvas = np.full((height, width, 3), 255, np.uint8)
    for row, photo in enumerate(photos):
        for col, column in enumerate(COLUMNS):
            top, left = corners[row, col]
            panel = panel_image(getattr(photo, column))
            canvas[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
            draw_label(canvas, panel_label(photo, column, nlm_strength), top - LABEL_HEIGHT, left, PANEL)
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, canvas):
        raise DemoError(f'could not write {path}')
    return path


def format_table(photos):
    """A Markdown table: PSNR and SSIM of noisy / NLM / HINT per photo, and their means."""
    header = ['image'] + [f'{label} {metric}' for label in ('noisy', 'NLM', 'HINT') for metric in ('PSNR', 'SSIM')]
    rows = [[photo.name] + [photo.scores[m][k] for m in METHODS for k in ('psnr', 'ssim')] for photo in photos]
    rows.append(['**mean**'] + [float(np.mean(column)) for column in zip(*[row[1:] for row in rows])])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] + ['---:'] * (len(header) - 1)) + '|']
    for row in rows:
        cells = [row[0]] + [f'{value:.2f}' if i % 2 == 0 else f'{value:.4f}' for i, value in enumerate(row[1:])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def report_notes(names, nlm, hint, timings):
    """The lines under the table in ``metrics.md``: where each number comes from.

    Args:
        names (dict): ``train`` and ``heldout`` photo names (:func:`prepare_datasets`).
        nlm (dict): ``h`` and ``sweep`` (:func:`choose_nlm_strength`).
        hint (dict): ``train_options``, ``test_options``, ``weights`` (paths) and ``logged`` (tools/test.py's means).
        timings (dict): seconds per step.
    """
    train_options = load_yaml(hint['train_options'])
    sweep = ', '.join(f'{h}: {psnr:.2f}' for h, psnr in nlm['sweep'].items())
    return [
        f'- **Photos** (bundled with scikit-image): held out {", ".join(names["heldout"])}; training (other '
        f'photos) {", ".join(names["train"])}.',
        "- **Metrics**: BasicSR's `calculate_psnr` (dB) and `calculate_ssim` on RGB, `crop_border` 0, 8-bit images "
        '(what tools/test.py logs).',
        f'- **Noise**: `GaussianNoiseDataset` with the test set of `{rel(hint["test_options"])}` (sigma {SIGMA}, '
        'noise seeded per image): the three methods get the same noisy image.',
        '- **noisy**: the noisy input clipped to [0, 255] and rounded to 8 bits. Non-local means needs 8 bits and is '
        'given exactly this image; HINT gets the unclipped floating-point noisy image, as tools/test.py feeds it.',
        f'- **NLM**: `cv2.fastNlMeansDenoisingColored(noisy, None, h, hColor, {NLM_TEMPLATE_WINDOW}, '
        f'{NLM_SEARCH_WINDOW})` with h = hColor = {nlm["h"]}, the best mean PSNR of a sweep on central '
        f'{NLM_SWEEP_CROP}x{NLM_SWEEP_CROP} crops of the training photos (h: dB = {sweep}).',
        f'- **HINT**: `{rel(hint["weights"])}`, trained by `tools/train.py -opt {rel(hint["train_options"])}` '
        f'({describe_network(train_options["network_g"])}, {train_options["train"]["total_iter"]} iterations). '
        'Per-image numbers from the images tools/test.py saved; the mean it logged: '
        f'PSNR {hint["logged"]["psnr"]:.4f} dB, SSIM {hint["logged"]["ssim"]:.4f}.',
        f'- **Figure**: `comparison.png`, central {CROP}x{CROP} crops zoomed {ZOOM} times.',
        '- **Time** of this run: ' + ', '.join(f'{key} {value:.0f} s' for key, value in timings.items()) + '.',
    ]


def write_report(path, table, notes):
    """``metrics.md``: a title, the table, and ``notes`` (Markdown lines) on how the numbers were made."""
    title = f'# HINT demo: blind Gaussian colour denoising, sigma {SIGMA}, held-out photos'
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n\n'.join([title, table, '\n'.join(notes)]) + '\n')
    return path


# ------------------------------------------------------------------------------------------------ driver
def describe_network(network):
    """A short description of a ``network_g`` and its parameter count."""
    count = sum(p.numel() for p in build_network(dict(network)).parameters())
    return (f'HINT dim {network["dim"]}, blocks {network["num_blocks"]}, refinement blocks '
            f'{network["num_refinement_blocks"]}: {count / 1e6:.2f} M parameters')


def run(workdir='.', quick=False):
    """Run the whole demo in ``workdir``; returns the paths of ``comparison.png`` and ``metrics.md``."""
    workdir = osp.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    timings, started = {}, time.time()

    step('1/5 Demo dataset: colour photographs bundled with scikit-image')
    t = time.time()
    names = prepare_datasets(workdir)
    if quick:
        train_yml, test_yml = quick_options(load_yaml(TRAIN_OPTIONS), load_yaml(TEST_OPTIONS), workdir)
    else:
        train_yml, test_yml = TRAIN_OPTIONS, TEST_OPTIONS
    timings['data'] = time.time() - t

    step(f'2/5 Non-local means: choosing h for sigma {SIGMA} on the training photos')
    t = time.time()
    training_photos = noisy_photos(load_yaml(test_yml)['datasets']['test_1'], workdir, folder=TRAIN_PHOTO_DIR)
    nlm_h, nlm_sweep = choose_nlm_strength(training_photos, QUICK_NLM_STRENGTHS if quick else NLM_STRENGTHS)
    timings['NLM sweep'] = time.time() - t

    step(f'3/5 Training HINT on the CPU ({load_yaml(train_yml)["train"]["total_iter"]} iterations)')
    weights, timings['training'] = train(train_yml, workdir)

    step('4/5 Evaluation on the held-out photos: noisy input, non-local means, HINT')
    t = time.time()
    photos, logged = evaluate(test_yml, nlm_h, workdir)
    timings['evaluation'] = time.time() - t

    step('5/5 Figure and table')
    results = osp.join(workdir, RESULTS_DIR)
    figure = write_figure(photos, nlm_h, osp.join(results, 'comparison.png'))
    table = format_table(photos)
    timings['total'] = time.time() - started
    hint = dict(train_options=train_yml, test_options=test_yml, weights=weights, logged=logged)
    notes = report_notes(names, dict(h=nlm_h, sweep=nlm_sweep), hint, timings)
    report = write_report(osp.join(results, 'metrics.md'), table, notes)

    print(f'\nBlind Gaussian colour denoising, sigma {SIGMA}, held-out photos:\n\n{table}\n')
    print(f'Figure: {rel(figure)}\nTable:  {rel(report)}')
    print('Time: ' + ', '.join(f'{key} {value:.0f} s' for key, value in timings.items()))
    print('\nRestore your own image with the trained model:\n'
          f'  python {rel(osp.join(REPO, "tools", "inference.py"))} -i YOUR_IMAGE.png '
          f'-o {rel(osp.join(results, "yours"))} --weights {rel(weights)} --config {rel(train_yml)}')
    return figure, report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build a denoising set from the photographs in scikit-image, train a compact HINT on it with '
        "BasicSR (CPU, about 9 minutes on 2 cores), and compare it with OpenCV's non-local means at sigma 25. Writes "
        'datasets/demo/, experiments/, results/demo/comparison.png and results/demo/metrics.md under --workdir.')
    parser.add_argument('--workdir', default='.', help='folder for the data and outputs (default: the current one)')
    parser.add_argument('--quick', action='store_true',
                        help='a tiny network for a few iterations: checks the pipeline in about a minute')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args.workdir, quick=args.quick)
    except DemoError as err:
        sys.exit(f'demo.py: error: {err}')


if __name__ == '__main__':
    main()
