"""The six option files of options/authors/ (the HINT authors' dialect) train and validate through tools/train.py
(its ``main`` in this process: the script's fresh start is covered by tests/tools/test_total_iter.py and the
end-to-end tests of tests/models).

Only what the authors' README tells a user to edit is changed (dataset paths, num_gpu, iteration counts), plus
the test-size overrides: a width-8 network, no data-loader workers, no TensorBoard. The data are generated.
"""
import re

import cv2
import numpy as np
import pytest
import yaml
from basicsr.utils.options import ordered_yaml

from conftest import REPO, TINY_CONFIG
from hint_plugin.utils.options import read_options
from tests.helpers import pipeline_in_process

AUTHORS = REPO / 'options' / 'authors'
PATCH_DIVISOR = 8


def smooth_image(rng, height, width):
    """A smooth random uint8 BGR image ``(height, width, 3)``."""
    image = cv2.resize(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_pairs(lq_dir, gt_dir, names, size, rng):
    """Clean images ``gt_dir/<name>.png`` and degraded ones ``lq_dir/<name>.png``."""
    for name in names:
        gt = smooth_image(rng, *size)
        lq = np.clip(gt * 0.6 + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
        lq_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gt_dir / f'{name}.png'), gt)
        cv2.imwrite(str(lq_dir / f'{name}.png'), lq)


def generated_data(root, kind):
    """Data folders for one task: ``{phase: (dataroot_lq, dataroot_gt)}``. Training images (24 x 20) are smaller
    than most patches (reflect padding); validation images (40 x 36) exceed the centre crops (256 / 8 = 32)."""
    rng = np.random.default_rng(0)
    train_names = [f'{i:04d}' for i in range(8)]  # one full batch of batch_size_per_gpu 8
    if kind == 'denoise':
        for phase, size, names in (('train', (24, 20), train_names), ('val', (40, 36), ['0100'])):
            folder = root / phase
            folder.mkdir(parents=True)
            for name in names:
                cv2.imwrite(str(folder / f'{name}.png'), smooth_image(rng, *size))
        return {'train': ('none', str(root / 'train')), 'val': ('none', str(root / 'val'))}
    if kind == 'dehaze':
        return authors_dehazing_layout(root, rng, train_names)
    data = {}
    for phase, size, names in (('train', (24, 20), train_names), ('val', (40, 36), ['0100'])):
        lq, gt = root / phase / 'lq', root / phase / 'gt'
        write_pairs(lq, gt, names, size, rng)
        data[phase] = (str(lq), str(gt))
    return data


def authors_dehazing_layout(root, rng, train_names):
    """The dehazing data as the authors' dataset reads it: one root (both dataroots) holding
    ``hazy_outside.txt`` (lines ``synthetic/part1/<id>_<A>_<beta>.jpg`` under ``Dehaze/``, clear images
    ``Dehaze/original/<id>.jpg``) and ``haze_test.txt`` (lines ``<id>_<A>_<beta>.jpg`` under ``outdoor/hazy/``,
    clear images ``outdoor/gt/<id>.png``)."""
    layout = (('train', (24, 20), train_names, 'hazy_outside.txt', 'Dehaze', 'synthetic/part1/', 'Dehaze/original',
               '.jpg'),
              ('val', (40, 36), ['0100'], 'haze_test.txt', 'outdoor/hazy', '', 'outdoor/gt', '.png'))
    for _, size, names, list_name, hazy, prefix, clear, extension in layout:
        lines = [f'{prefix}{name}_0.8_0.1.jpg' for name in names]
        (root / list_name).parent.mkdir(parents=True, exist_ok=True)
        (root / list_name).write_text(''.join(f'{line}\n' for line in lines))
        for name, line in zip(names, lines):
            gt = smooth_image(rng, *size)
            lq = np.clip(gt * 0.6 + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
            for path, image in ((root / hazy / line, lq), (root / clear / f'{name}{extension}', gt)):
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), image)
    return {'train': (str(root), str(root)), 'val': (str(root), str(root))}


def shortened(options, data):
    """The allowed edits: paths, num_gpu, iteration counts (one per progressive stage); test-size overrides: a
    tiny network, patch sizes divided by 8 (their order, and so the stages above gt_size, kept)."""
    options['num_gpu'] = 0
    for phase, (lq, gt) in data.items():
        options['datasets'][phase]['dataroot_lq'], options['datasets'][phase]['dataroot_gt'] = lq, gt
    train_set = options['datasets']['train']
    train_set['iters'] = [1] * len(train_set['iters'])
    train_set['num_worker_per_gpu'] = 0
    train_set['gt_size'] //= PATCH_DIVISOR
    train_set['gt_sizes'] = [size // PATCH_DIVISOR for size in train_set['gt_sizes']]
    if options['datasets']['val'].get('gt_size'):
        options['datasets']['val']['gt_size'] //= PATCH_DIVISOR
    total = len(train_set['iters']) + 1
    options['train']['total_iter'] = total
    options['train']['scheduler']['periods'] = [1, total - 1]
    options['val']['val_freq'] = options['logger']['save_checkpoint_freq'] = total
    options['logger']['print_freq'] = 1
    options['logger']['use_tb_logger'] = False
    options['network_g'].update(TINY_CONFIG)
    return options


CASES = {
    'RealDehazing_HINT.yml': ('dehaze', []),
    'GaussianColorDenoising_HINT.yml': ('denoise', [5, 6]),
    'Deraining_HINT_syn_rain100L.yml': ('paired', []),
    'Desnow_snow100k_HINT.yml': ('paired', [2, 3, 4, 5]),
    'HINT_LOL_v2_real.yml': ('paired', []),
    'HINT_LOL_v2_synthetic.yml': ('paired', [2, 3, 4, 5]),
}


def test_every_authors_task_has_a_file():
    assert sorted(path.name for path in AUTHORS.glob('*.yml')) == sorted(CASES)


@pytest.mark.slow
@pytest.mark.parametrize('file_name', sorted(CASES))
def test_authors_option_file_trains_and_validates(tmp_path, monkeypatch, capsys, file_name):
    kind, skipped = CASES[file_name]
    options = read_options(AUTHORS / file_name)
    assert options['model_type'] == 'ImageCleanModel'
    options = shortened(options, generated_data(tmp_path / 'data', kind))
    option_file = tmp_path / file_name
    option_file.write_text(yaml.dump(options, Dumper=ordered_yaml()[1]))

    status, log = pipeline_in_process('train', ['-opt', option_file], tmp_path, monkeypatch, capsys)
    assert status == 0, log[-4000:]
    total = options['train']['total_iter']
    assert [int(i) for i in re.findall(r'iter:\s*(\d+),', log)] == list(range(1, total + 1)), log[-3000:]
    assert re.search(r'Validation ValSet\s+# psnr: [\d.]+', log), log[-3000:]
    models = tmp_path / 'experiments' / options['name'] / 'models'
    assert (models / f'net_g_{total}.pth').is_file() and (models / 'net_g_latest.pth').is_file()
    if skipped:
        assert f'progressive stage(s) {", ".join(map(str, skipped))} ask for patches' in log
    else:
        assert 'ask for patches' not in log
    assert 'val.max_minibatch (8) is not read' in log
