"""Paired data that does not pair, fed to BasicSR's own PairedImageDataset (as the plugin's entry points build it,
after :func:`hint_plugin.compat.name_paired_dataset_errors`) and to the authors' Dataset_PairedImage: each case
is a named DataError (which file, which size), never an AssertionError or a message without file names."""
import cv2
import numpy as np
import pytest
from basicsr.data import build_dataset
from basicsr.utils.registry import DATASET_REGISTRY

from hint_plugin import compat
from hint_plugin.errors import DataError


@pytest.fixture
def entry_point_registry(monkeypatch):
    """The registry as tools/train.py and tools/test.py leave it; restored afterwards."""
    monkeypatch.setitem(DATASET_REGISTRY._obj_map, 'PairedImageDataset',
                        DATASET_REGISTRY._obj_map['PairedImageDataset'])
    compat.name_paired_dataset_errors()


def write(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), 100, np.uint8))


def options(tmp_path, dataset_type, phase='train', **extra):
    return {'name': 'Set', 'type': dataset_type, 'phase': phase, 'scale': 1, 'gt_size': 8, 'use_hflip': False,
            'use_rot': False, 'dataroot_lq': str(tmp_path / 'lq'), 'dataroot_gt': str(tmp_path / 'gt'),
            'io_backend': {'type': 'disk'}, **extra}


def authors_options(tmp_path, phase='train'):
    opt = options(tmp_path, 'Dataset_PairedImage', phase, geometric_augs=False)
    del opt['use_hflip'], opt['use_rot']
    return opt


def test_basicsr_paired_dataset_with_names_that_do_not_pair_names_them(tmp_path, entry_point_registry):
    write(tmp_path / 'lq' / 'a.png', (16, 16))
    write(tmp_path / 'gt' / 'b.png', (16, 16))
    with pytest.raises(DataError, match=r"lq and gt do not hold the same images: 1 file \(b.png\) of dataroot_gt"):
        build_dataset(options(tmp_path, 'PairedImageDataset'))


def test_basicsr_paired_dataset_with_more_lq_than_gt_names_the_extra(tmp_path, entry_point_registry):
    for name in ('a', 'b'):
        write(tmp_path / 'lq' / f'{name}.png', (16, 16))
    write(tmp_path / 'gt' / 'a.png', (16, 16))
    with pytest.raises(DataError, match=r"1 file \(b.png\) of dataroot_lq .* missing from dataroot_gt"):
        build_dataset(options(tmp_path, 'PairedImageDataset'))


@pytest.mark.parametrize('phase', ['train', 'val'])
def test_basicsr_paired_dataset_with_a_pair_of_other_sizes_names_both_files(tmp_path, entry_point_registry, phase):
    write(tmp_path / 'lq' / 'a.png', (16, 16))
    write(tmp_path / 'gt' / 'a.png', (16, 24))
    dataset = build_dataset(options(tmp_path, 'PairedImageDataset', phase))
    with pytest.raises(DataError, match=r"lq file '.*lq/a.png' is 16x16 but the gt file '.*gt/a.png' is 16x24"):
        dataset[0]


def test_authors_paired_dataset_with_names_that_do_not_pair_names_them(tmp_path):
    write(tmp_path / 'lq' / 'rain-1.png', (16, 16))
    write(tmp_path / 'gt' / 'norain-1.png', (16, 16))
    with pytest.raises(DataError, match=r'1 file \(rain-1.png\) of dataroot_lq'):
        build_dataset(authors_options(tmp_path))


@pytest.mark.parametrize('phase', ['train', 'val'])
def test_authors_paired_dataset_with_a_pair_of_other_sizes_names_both_files(tmp_path, phase):
    write(tmp_path / 'lq' / 'a.png', (20, 16))
    write(tmp_path / 'gt' / 'a.png', (16, 16))
    dataset = build_dataset(authors_options(tmp_path, phase))
    with pytest.raises(DataError, match=r"lq file '.*lq/a.png' is 20x16 but the gt file '.*gt/a.png' is 16x16"):
        dataset[0]


def test_authors_paired_dataset_with_an_undecodable_image_names_it(tmp_path):
    write(tmp_path / 'gt' / 'a.png', (16, 16))
    (tmp_path / 'lq').mkdir()
    (tmp_path / 'lq' / 'a.png').write_bytes(b'not a png')
    with pytest.raises(DataError, match=r"cannot decode the lq file '.*lq/a.png' \(9 bytes\)"):
        build_dataset(authors_options(tmp_path))[0]
