"""tools/create_lmdb.py and hint_plugin.data.lmdb_layouts: fake copies of each dataset layout -> BasicSR LMDBs."""
import subprocess
import sys
from typing import NamedTuple, Sequence, Tuple

import cv2
import lmdb
import numpy as np
import pytest
from basicsr.data import build_dataset
from basicsr.utils import imfrombytes

from conftest import REPO
from hint_plugin.data.lmdb_layouts import configure_layout, create_lmdbs, estimate_map_size, find_pairs
from hint_plugin.errors import DataError


class Case(NamedTuple):
    """A fake dataset: ``entries`` are (lq file, gt file, expected key); ``extras`` are other files in it."""
    layout: str
    entries: Sequence[Tuple[str, str, str]]
    options: dict = {}
    extras: Sequence[str] = ()
    skipped: Sequence[str] = ()


CASES = {
    'lolv2-real': Case('lolv2-real', [('Low/low00001.png', 'Normal/normal00001.png', '00001'),
                                      ('Low/low00002.png', 'Normal/normal00002.png', '00002')]),
    'lolv2-synthetic': Case('lolv2-synthetic', [('Low/r000da54ft.png', 'Normal/r000da54ft.png', 'r000da54ft'),
                                                ('Low/gray01.png', 'Normal/gray01.png', 'gray01')]),
    'sots': Case('sots', [('hazy/0001_0.8_0.2.jpg', 'gt/0001.png', '0001_0p8_0p2'),
                          ('hazy/1400_1.png', 'gt/1400.jpg', '1400_1'),
                          ('hazy/1400_2.png', 'gt/1400.jpg', '1400_2'),
                          ('hazy/1400_10.PNG', 'gt/1400.jpg', '1400_10')]),
    'snow100k': Case('snow100k', [('synthetic/beautiful_smile_00003.jpg', 'gt/beautiful_smile_00003.jpg',
                                   'beautiful_smile_00003'),
                                  ('synthetic/city_read_00119.jpg', 'gt/city_read_00119.jpg', 'city_read_00119')]),
    'rain100-side-by-side': Case('rain100', [('rain-001.png', 'norain-001.png', '001'),
                                             ('rain-002.png', 'norain-002.png', '002')],
                                 extras=['rainregion-001.png', 'readme.txt'], skipped=['rainregion-001.png']),
    'rain100-subfolders': Case('rain100', [('rain/rain-001.png', 'norain/norain-001.png', '001'),
                                           ('rain/rain-100.png', 'norain/norain-100.png', '100')]),
    'regex-rain200h': Case('regex', [('rain/X2/norain-1x2.png', 'norain/norain-1.png', '1'),
                                     ('rain/X2/norain-2x2.png', 'norain/norain-2.png', '2')],
                           options=dict(lq_dir='rain/X2', gt_dir='norain', lq_pattern=r'norain-(?P<id>\d+)x2',
                                        gt_pattern=r'norain-(?P<id>\d+)', key='id')),
}


def write_image(path, height=6, width=8, seed=0):
    """A random uint8 image (grayscale when 'gray' is in the name) written with OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (height, width) if 'gray' in path.name else (height, width, 3)
    assert cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def build(root, case):
    """Write the images of ``case`` under ``root``: both images of a pair get the size of their gt image."""
    gt_files = sorted({gt for _, gt, _ in case.entries})
    for seed, (lq, gt, _) in enumerate(case.entries):
        size = 6 + gt_files.index(gt), 8 + 2 * gt_files.index(gt)
        write_image(root / lq, *size, seed=seed)
        write_image(root / gt, *size, seed=100 + gt_files.index(gt))
    for extra in case.extras:
        if extra.endswith('.png'):
            write_image(root / extra)
        else:
            (root / extra).write_text('not an image')


def read_lmdb(lmdb_path):
    """All entries of an LMDB, decoded (the environment is closed again: py-lmdb opens a path once at a time)."""
    with lmdb.open(str(lmdb_path), readonly=True, lock=False) as env, env.begin() as txn:
        return {key.decode(): imfrombytes(value, flag='unchanged') for key, value in txn.cursor()}


def read_image(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def meta_line(key, img):
    """A line of meta_info.txt as BasicSR writes it: ``key.png (h,w,c) compress_level``."""
    height, width = img.shape[:2]
    return f'{key}.png ({height},{width},{img.shape[2] if img.ndim == 3 else 1}) 1'


def create(root, output, layout='lolv2-real', **options):
    return create_lmdbs(str(root), str(output), configure_layout(layout, **options))


@pytest.mark.parametrize('case', CASES.values(), ids=CASES.keys())
def test_layout_gives_lq_and_gt_lmdbs_with_the_same_keys_and_the_original_images(tmp_path, case):
    build(tmp_path / 'data', case)
    summary = create(tmp_path / 'data', tmp_path / 'out', case.layout, **case.options)
    lq, gt = read_lmdb(tmp_path / 'out' / 'lq.lmdb'), read_lmdb(tmp_path / 'out' / 'gt.lmdb')
    assert set(lq) == set(gt) == {key for _, _, key in case.entries}
    for lq_file, gt_file, key in case.entries:
        assert np.array_equal(lq[key], read_image(tmp_path / 'data' / lq_file)), key
        assert np.array_equal(gt[key], read_image(tmp_path / 'data' / gt_file)), key
    for name, images in (('lq', lq), ('gt', gt)):
        meta = (tmp_path / 'out' / f'{name}.lmdb' / 'meta_info.txt').read_text().splitlines()
        assert meta == [meta_line(key, images[key]) for key in sorted(images)]
    assert summary.num_images == len(case.entries)
    assert summary.skipped == [str(tmp_path / 'data' / name) for name in case.skipped]
    assert str(tmp_path / 'out' / 'lq.lmdb') in str(summary)


def test_sots_lmdbs_load_with_basicsr_paired_image_dataset(tmp_path):
    build(tmp_path / 'data', CASES['sots'])
    create(tmp_path / 'data', tmp_path / 'out', 'sots')
    dataset = build_dataset({
        'name': 'x', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'out' / 'gt.lmdb'),
        'dataroot_lq': str(tmp_path / 'out' / 'lq.lmdb'), 'io_backend': {'type': 'lmdb'}, 'phase': 'val',
        'scale': 1, 'filename_tmpl': '{}'})
    assert len(dataset) == 4
    items = [dataset[index] for index in range(len(dataset))]
    assert [item['lq_path'] for item in items] == ['0001_0p8_0p2', '1400_1', '1400_10', '1400_2']
    assert items[0]['lq'].shape == items[0]['gt'].shape == (3, 6, 8)  # gt/0001.png is the first gt image
    assert all(item['lq'].shape == item['gt'].shape == (3, 7, 10) for item in items[1:])
    assert all(np.array_equal(items[1]['gt'], item['gt']) for item in items[2:])  # one gt for three hazy


def test_single_layout_writes_one_named_lmdb(tmp_path):
    for seed, name in enumerate(['0001.png', '0002.JPG', 'gray.bmp']):
        write_image(tmp_path / 'clean' / name, seed=seed)
    summary = create_lmdbs(str(tmp_path / 'clean'), str(tmp_path / 'out'), configure_layout('single'), name='train')
    assert sorted(path.name for path in (tmp_path / 'out').iterdir()) == ['train.lmdb']
    images = read_lmdb(tmp_path / 'out' / 'train.lmdb')
    assert sorted(images) == ['0001', '0002', 'gray']
    assert np.array_equal(images['0002'], read_image(tmp_path / 'clean' / '0002.JPG'))
    assert str(summary).startswith('3 images -> ')


def test_map_size_counts_every_image_not_only_the_first(tmp_path):
    # BasicSR's own estimate (10x the first image) would be too small here: a 2x2 image, then large ones.
    write_image(tmp_path / 'data' / 'Low' / 'a.png', 2, 2)
    write_image(tmp_path / 'data' / 'Normal' / 'a.png', 2, 2)
    for seed, name in enumerate(['b.png', 'c.png']):
        write_image(tmp_path / 'data' / 'Low' / name, 300, 300, seed=seed)
        write_image(tmp_path / 'data' / 'Normal' / name, 300, 300, seed=10 + seed)
    create(tmp_path / 'data', tmp_path / 'out', 'lolv2-synthetic')
    assert sorted(read_lmdb(tmp_path / 'out' / 'gt.lmdb')) == ['a', 'b', 'c']
    assert estimate_map_size([100, 300_000]) > 2 * 300_100


def test_unpaired_images_are_refused_by_name_and_nothing_is_written(tmp_path):
    build(tmp_path / 'data', CASES['lolv2-real'])
    write_image(tmp_path / 'data' / 'Low' / 'low00007.png')
    write_image(tmp_path / 'data' / 'Normal' / 'normal00009.png')
    unpaired = r'unpaired images: lq without gt: 1 file .*; gt without lq: 1 file'
    with pytest.raises(DataError, match=unpaired) as err:
        create(tmp_path / 'data', tmp_path / 'out')
    assert 'low00007.png' in str(err.value) and 'normal00009.png' in str(err.value)
    assert not (tmp_path / 'out').exists()


def test_pairs_of_different_sizes_are_refused_naming_both_files(tmp_path):
    build(tmp_path / 'data', CASES['lolv2-real'])
    write_image(tmp_path / 'data' / 'Normal' / 'normal00002.png', 6, 9)
    with pytest.raises(DataError, match='sizes differ') as err:
        create(tmp_path / 'data', tmp_path / 'out')
    assert 'low00002.png is 10x7' in str(err.value) and 'normal00002.png is 9x6' in str(err.value)
    assert not (tmp_path / 'out').exists()


def test_corrupted_image_is_reported_by_name(tmp_path):
    build(tmp_path / 'data', CASES['sots'])
    (tmp_path / 'data' / 'hazy' / '1400_2.png').write_bytes(b'\x89PNG truncated')
    with pytest.raises(DataError, match=r'cannot read image .*1400_2\.png'):
        create(tmp_path / 'data', tmp_path / 'out', 'sots')
    assert not (tmp_path / 'out').exists()


def test_existing_lmdb_is_kept_without_overwrite_and_replaced_with_it(tmp_path):
    build(tmp_path / 'data', CASES['lolv2-real'])
    create(tmp_path / 'data', tmp_path / 'out')
    write_image(tmp_path / 'data' / 'Low' / 'low00003.png')
    write_image(tmp_path / 'data' / 'Normal' / 'normal00003.png')
    with pytest.raises(DataError, match=r'lq\.lmdb already exists; pass --overwrite'):
        create(tmp_path / 'data', tmp_path / 'out')
    assert sorted(read_lmdb(tmp_path / 'out' / 'gt.lmdb')) == ['00001', '00002']
    create_lmdbs(str(tmp_path / 'data'), str(tmp_path / 'out'), configure_layout('lolv2-real'), overwrite=True)
    assert sorted(read_lmdb(tmp_path / 'out' / 'lq.lmdb')) == sorted(read_lmdb(tmp_path / 'out' / 'gt.lmdb')) == [
        '00001', '00002', '00003']


@pytest.mark.parametrize('options, message', [
    (dict(layout='regex', lq_dir='a', gt_dir='b', gt_pattern='(?P<id>.+)'), 'needs --lq-pattern$'),
    (dict(layout='snow100k', gt_pattern='(.+)'), r'needs a named group \(\?P<id>'),
    (dict(layout='single', lq_dir='noisy'), 'has no lq images'),
    (dict(layout='sots', key='name'), 'unknown key source'),
])
def test_bad_layout_options_are_refused(options, message):
    with pytest.raises(DataError, match=message):
        configure_layout(options.pop('layout'), **options)


def test_missing_folder_and_clashing_keys_are_refused(tmp_path):
    with pytest.raises(DataError, match='no lq folder'):
        find_pairs(str(tmp_path), configure_layout('snow100k', gt_dir='.'))
    for name in ('Low/x.png', 'Low/x.jpg', 'Normal/x.png'):
        write_image(tmp_path / name)
    with pytest.raises(DataError, match=r'LMDB keys shared by several images: 1, e.g. .*x\.jpg'):
        find_pairs(str(tmp_path), configure_layout('lolv2-synthetic'))
    write_image(tmp_path / 'Normal' / 'x.jpg')
    with pytest.raises(DataError, match='gt ids shared by several images: 1'):
        find_pairs(str(tmp_path), configure_layout('lolv2-synthetic'))


def test_cli_writes_lmdbs_and_prints_a_summary(tmp_path, capsys):
    from hint_plugin.cli import create_lmdb as cli
    build(tmp_path / 'data', CASES['rain100-subfolders'])
    cli.main(['--layout', 'rain100', '--input', str(tmp_path / 'data'), '--output', str(tmp_path / 'out')])
    assert capsys.readouterr().out.splitlines()[-1] == (
        f'2 pairs -> {tmp_path / "out" / "lq.lmdb"}, {tmp_path / "out" / "gt.lmdb"}')


def test_cli_exits_nonzero_with_a_one_line_message(tmp_path):
    build(tmp_path / 'data', CASES['rain100-side-by-side'])
    (tmp_path / 'data' / 'norain-002.png').unlink()
    result = subprocess.run(
        [sys.executable, 'tools/create_lmdb.py', '--layout', 'rain100', '--input', str(tmp_path / 'data'),
         '--output', str(tmp_path / 'out')], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    assert result.stderr.splitlines()[-1].startswith('create_lmdb.py: error: unpaired images: lq without gt: 1 file')
    assert 'rain-002.png' in result.stderr.splitlines()[-1]
    assert not (tmp_path / 'out').exists()
