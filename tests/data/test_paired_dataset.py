"""CheckedPairedImageDataset: BasicSR's PairedImageDataset items, with errors that name the bad data."""
import gc
import os
import random
import re

import cv2
import lmdb
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.utils.file_client import LmdbBackend
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from hint_plugin import compat
from hint_plugin.errors import DataError


@pytest.fixture(autouse=True)
def shared_lmdb_environments(monkeypatch):
    """Several datasets of one LMDB in this process, as where HINT trains: the plugin's train and test entry points
    apply :func:`hint_plugin.compat.share_lmdb_environments`; here it applies for each test only."""
    monkeypatch.setattr(LmdbBackend, '__init__', compat.lmdb_backend_init)


def write_pairs(root, sizes, seed=0):
    """``root/lq/<key>.png`` and ``root/gt/<key>.png`` for ``sizes = {key: ((h_lq, w_lq), (h_gt, w_gt))}``."""
    rng = np.random.default_rng(seed)
    for side in ('lq', 'gt'):
        (root / side).mkdir(parents=True, exist_ok=True)
    for key, shapes in sizes.items():
        for side, (height, width) in zip(('lq', 'gt'), shapes):
            cv2.imwrite(str(root / side / f'{key}.png'), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return root / 'lq', root / 'gt'


def to_lmdb(folder, keys):
    """A BasicSR LMDB (``<folder>.lmdb``) of ``folder/<key>.png`` for ``keys``."""
    path = f'{folder}.lmdb'
    make_lmdb_from_imgs(str(folder), path, [f'{key}.png' for key in keys], list(keys), map_size=1 << 24)
    return path


def options(lq, gt, phase='val', dataset='CheckedPairedImageDataset', **extra):
    backend = 'lmdb' if str(gt).endswith('.lmdb') else 'disk'
    opt = dict(name='pairs', type=dataset, dataroot_lq=str(lq), dataroot_gt=str(gt), io_backend={'type': backend},
               filename_tmpl='{}', phase=phase, scale=1, gt_size=8, use_hflip=True, use_rot=True)
    opt.update(extra)
    return opt


def item_of(dataset, key):
    """The item of ``dataset`` whose gt is the image ``key`` (BasicSR lists a folder in scandir order)."""
    index = [os.path.splitext(os.path.basename(paths['gt_path']))[0] for paths in dataset.paths].index(key)
    return dataset[index]


SQUARE = {key: ((16, 16), (16, 16)) for key in ('a', 'b', 'c')}


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
@pytest.mark.parametrize('phase', ['train', 'val'])
def test_items_equal_basicsr_paired_image_dataset(tmp_path, backend, phase):
    lq, gt = write_pairs(tmp_path, {'a': ((16, 20), (16, 20)), 'b': ((12, 16), (12, 16))})
    if backend == 'lmdb':
        lq, gt = to_lmdb(lq, 'ab'), to_lmdb(gt, 'ab')
    checked = build_dataset(options(lq, gt, phase))
    reference = build_dataset(options(lq, gt, phase, dataset='PairedImageDataset'))
    assert len(checked) == len(reference) == 2
    for index in range(2):
        random.seed(index)  # the same random crop and augmentation for both
        ours = checked[index]
        random.seed(index)
        theirs = reference[index]
        assert ours.keys() == theirs.keys()
        assert ours['lq_path'] == theirs['lq_path'] and ours['gt_path'] == theirs['gt_path']
        assert torch.equal(ours['lq'], theirs['lq']) and torch.equal(ours['gt'], theirs['gt'])


def test_corrupted_lmdb_value_is_named_by_key_and_lmdb(tmp_path):
    lq, gt = write_pairs(tmp_path, SQUARE)
    lq, gt = to_lmdb(lq, 'abc'), to_lmdb(gt, 'abc')
    with lmdb.open(lq, map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.put(b'b', b'\x89PNG\r\n\x1a\n this is not the rest of a PNG')
    dataset = build_dataset(options(lq, gt))
    assert item_of(dataset, 'a')['lq'].shape == (3, 16, 16)
    with pytest.raises(DataError, match=re.escape(f"cannot decode the lq LMDB key 'b' of '{lq}'")):
        item_of(dataset, 'b')


def test_key_listed_in_meta_info_but_absent_from_the_lmdb_is_named(tmp_path):
    lq, gt = write_pairs(tmp_path, SQUARE)
    lq, gt = to_lmdb(lq, 'abc'), to_lmdb(gt, 'abc')
    with lmdb.open(gt, map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.delete(b'c')
    with pytest.raises(DataError, match=re.escape(f"gt LMDB key 'c' of '{gt}' is listed in meta_info.txt")):
        item_of(build_dataset(options(lq, gt)), 'c')


def test_unreadable_file_in_a_folder_is_named(tmp_path):
    lq, gt = write_pairs(tmp_path, SQUARE)
    (gt / 'b.png').write_bytes((gt / 'b.png').read_bytes()[:40])  # truncated
    dataset = build_dataset(options(lq, gt))
    assert item_of(dataset, 'a')['gt'].shape == (3, 16, 16)
    with pytest.raises(DataError, match=re.escape(f"cannot decode the gt file '{gt / 'b.png'}'")):
        item_of(dataset, 'b')


@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
@pytest.mark.parametrize('phase', ['train', 'val'])
def test_pair_of_different_sizes_names_both_images_and_sizes(tmp_path, backend, phase):
    # gt larger than lq: BasicSR crops it silently in validation and reports no file names in training
    lq, gt = write_pairs(tmp_path, {'a': ((16, 16), (16, 16)), 'b': ((16, 16), (20, 16))})
    if backend == 'lmdb':
        lq, gt = to_lmdb(lq, 'ab'), to_lmdb(gt, 'ab')
        names = (f"lq LMDB key 'b' of '{lq}'", f"gt LMDB key 'b' of '{gt}'")
    else:
        names = (f"lq file '{lq / 'b.png'}'", f"gt file '{gt / 'b.png'}'")
    dataset = build_dataset(options(lq, gt, phase))
    item_of(dataset, 'a')
    with pytest.raises(DataError) as error:
        item_of(dataset, 'b')
    assert str(error.value) == (f'the {names[0]} is 16x16 but the {names[1]} is 20x16; '
                                'expected gt = lq in height and width')


def test_validation_keeps_basicsr_crop_of_a_super_resolution_gt(tmp_path):
    # scale 2: a 33x34 gt for a 16x16 lq is cropped to 32x32 (SR benchmarks); a 34x32 one is an error
    lq, gt = write_pairs(tmp_path, {'a': ((16, 16), (33, 33)), 'b': ((16, 16), (34, 32))})
    dataset = build_dataset(options(lq, gt, scale=2))
    assert item_of(dataset, 'a')['gt'].shape == (3, 32, 32)
    with pytest.raises(DataError, match='is 34x32; expected gt = 2 x lq'):
        item_of(dataset, 'b')


def test_lmdbs_with_different_keys_name_a_few_missing_keys(tmp_path):
    keys = [f'{i:02d}' for i in range(9)]
    lq, gt = write_pairs(tmp_path, {key: ((8, 8), (8, 8)) for key in keys})
    lq, gt = to_lmdb(lq, keys[:2] + ['08']), to_lmdb(gt, keys[:8])  # gt lacks 08; lq lacks 02..07
    with pytest.raises(DataError) as error:
        build_dataset(options(lq, gt))
    assert str(error.value) == (
        "lq and gt do not hold the same images: 6 keys (02, 03, 04, 05, 06, ...) of "
        f"'{gt}' missing from '{lq}'; 1 key (08) of '{lq}' missing from '{gt}'")


def test_folders_with_unpaired_files_name_them(tmp_path):
    lq, gt = write_pairs(tmp_path, SQUARE)
    (lq / 'c.png').rename(lq / 'x_c.png')
    with pytest.raises(DataError, match=r"1 file \(c.png\) of dataroot_gt .* missing from dataroot_lq .*; "
                                              r"1 file \(x_c.png\) of dataroot_lq"):
        build_dataset(options(lq, gt))


def test_lmdb_without_meta_info_is_refused_by_name(tmp_path):
    lq, gt = write_pairs(tmp_path, SQUARE)
    lq, gt = to_lmdb(lq, 'abc'), to_lmdb(gt, 'abc')
    (tmp_path / 'gt.lmdb' / 'meta_info.txt').unlink()
    with pytest.raises(DataError, match=re.escape(f"dataroot_gt '{gt}' is not a BasicSR LMDB: no meta_info.txt")):
        build_dataset(options(lq, gt))


def test_datasets_share_one_read_only_lmdb_and_release_it(tmp_path):
    # py-lmdb 3 refuses a second lmdb.open of an environment the process holds: training and validation on
    # one LMDB with 0 workers. hint_plugin.compat shares the read-only environment instead (the fixture above).
    lq, gt = write_pairs(tmp_path, SQUARE)
    lq, gt = to_lmdb(lq, 'abc'), to_lmdb(gt, 'abc')
    train = build_dataset(options(lq, gt, 'train'))
    val = build_dataset(options(lq, gt, 'val'))
    assert train[0]['gt'].shape == (3, 8, 8) and val[0]['gt'].shape == (3, 16, 16)
    assert train.file_client.client._client['gt'] is val.file_client.client._client['gt']
    del train, val
    gc.collect()
    with lmdb.open(gt, readonly=True, lock=False) as env:  # released: a plain open works again
        assert env.stat()['entries'] == 3
