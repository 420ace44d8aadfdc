"""GaussianNoiseDataset: folder and LMDB backends, deterministic validation noise, training crops, errors."""
import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.registry import DATASET_REGISTRY

import hint_plugin.data  # noqa: F401  (registers the datasets)
from hint_plugin.data.gaussian_noise_dataset import GaussianNoiseDataset
from hint_plugin.errors import DataError, LmdbError, OptionsError
from hint_plugin.utils.option_schema import check_dataset_options

NAMES = ['b_img', 'a_img', 'c_img']


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / 'clean'
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i, name in enumerate(NAMES):
        cv2.imwrite(str(folder / f'{name}.png'), rng.integers(0, 256, (24 + 4 * i, 40, 3), dtype=np.uint8))
    return folder


def make_lmdb(folder, tmp_path):
    lmdb_path = str(tmp_path / 'clean.lmdb')
    files = sorted(p.name for p in folder.iterdir())
    make_lmdb_from_imgs(str(folder), lmdb_path, files, [f.rsplit('.', 1)[0] for f in files])
    return lmdb_path


def val_opt(root, **extra):
    return {'dataroot_gt': str(root), 'io_backend': {'type': 'disk'}, 'phase': 'val', 'sigma_test': 25, **extra}


def train_opt(root, **extra):
    return {'dataroot_gt': str(root), 'io_backend': {'type': 'disk'}, 'phase': 'train', 'sigma_range': [5, 15],
            'gt_size': 16, 'use_hflip': True, 'use_rot': True, **extra}


def test_registered_and_sorted_folder_items(image_folder):
    assert DATASET_REGISTRY.get('GaussianNoiseDataset') is GaussianNoiseDataset
    dataset = GaussianNoiseDataset(val_opt(image_folder))
    assert len(dataset) == 3
    item = dataset[0]
    assert item['gt_path'].endswith('a_img.png') and item['lq_path'] == item['gt_path']
    assert item['gt'].shape == item['lq'].shape == (3, 28, 40)
    assert item['gt'].dtype == item['lq'].dtype == torch.float32
    assert item['sigma'] == 25.0
    bgr = cv2.imread(item['gt_path']).astype(np.float32) / 255.
    assert torch.equal(item['gt'], torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1))  # RGB order


def test_validation_noise_is_deterministic_and_differs_between_images_and_sigmas(image_folder):
    first, second = GaussianNoiseDataset(val_opt(image_folder)), GaussianNoiseDataset(val_opt(image_folder))
    noise = [first[i]['lq'] - first[i]['gt'] for i in range(3)]
    for i in reversed(range(3)):  # another instance, another order: the same noise
        assert torch.equal(second[i]['lq'] - second[i]['gt'], noise[i])
    crop = (slice(None), slice(0, 24), slice(0, 40))
    assert not torch.allclose(noise[0][crop], noise[1][crop])
    other_sigma = GaussianNoiseDataset(val_opt(image_folder, sigma_test=50))[0]
    assert not torch.allclose((other_sigma['lq'] - other_sigma['gt']) / 2, noise[0])
    other_seed = GaussianNoiseDataset(val_opt(image_folder, seed=1))[0]
    assert not torch.allclose(other_seed['lq'] - other_seed['gt'], noise[0])


def test_lmdb_backend_matches_folder(image_folder, tmp_path):
    lmdb_path = make_lmdb(image_folder, tmp_path)
    from_lmdb = GaussianNoiseDataset(val_opt(lmdb_path, io_backend={'type': 'lmdb'}))
    from_folder = GaussianNoiseDataset(val_opt(image_folder))
    assert len(from_lmdb) == 3
    for i in range(3):
        a, b = from_lmdb[i], from_folder[i]
        assert a['gt_path'] == a['lq_path'] == sorted(NAMES)[i]
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])


def test_lmdb_training_crop(image_folder, tmp_path):
    dataset = GaussianNoiseDataset(train_opt(make_lmdb(image_folder, tmp_path), io_backend={'type': 'lmdb'}))
    item = dataset[2]
    assert item['gt'].shape == item['lq'].shape == (3, 16, 16) and item['gt_path'] == 'c_img'


def test_noise_std_matches_sigma_and_is_not_clipped(tmp_path):
    folder = tmp_path / 'flat'
    folder.mkdir()
    cv2.imwrite(str(folder / 'flat.png'), np.full((96, 96, 3), 250, np.uint8))
    item = GaussianNoiseDataset(val_opt(folder, sigma_test=30))[0]
    noise = item['lq'] - item['gt']
    assert abs(noise.std().item() - 30 / 255) < 0.03 * 30 / 255
    assert abs(noise.mean().item()) < 0.003
    assert item['lq'].max() > 1  # 250/255 + noise: values above 1 are kept
    zero = GaussianNoiseDataset(val_opt(folder, sigma_test=0))[0]
    assert torch.equal(zero['lq'], zero['gt'])


def test_training_crops_augmentation_and_sigma_range(image_folder):
    dataset = GaussianNoiseDataset(train_opt(image_folder))
    random.seed(0)
    np.random.seed(0)
    sigmas = []
    for i in range(12):
        item = dataset[i % 3]
        assert item['gt'].shape == item['lq'].shape == (3, 16, 16)
        assert 5 <= item['sigma'] <= 15
        assert 0 <= item['gt'].min() and item['gt'].max() <= 1
        noise_std = (item['lq'] - item['gt']).std().item() * 255
        assert abs(noise_std - item['sigma']) < 0.25 * item['sigma']
        sigmas.append(item['sigma'])
    assert len(set(sigmas)) == 12
    # the global generators, which BasicSR seeds per worker, drive crop, flips and noise
    random.seed(3)
    np.random.seed(3)
    again = dataset[0]
    random.seed(3)
    np.random.seed(3)
    assert torch.equal(dataset[0]['lq'], again['lq'])


def test_image_smaller_than_gt_size_names_it(image_folder):
    with pytest.raises(DataError, match=r'a_img\.png.*28x40.*gt_size 32'):
        GaussianNoiseDataset(train_opt(image_folder, gt_size=32))[0]


def test_corrupted_file_is_named(image_folder):
    (image_folder / 'a_img.png').write_bytes(b'not a png at all')
    dataset = GaussianNoiseDataset(val_opt(image_folder))
    with pytest.raises(DataError, match='a_img.png'):
        dataset[0]
    (image_folder / 'a_img.png').write_bytes(b'')
    with pytest.raises(DataError, match='a_img.png'):
        dataset[0]
    assert dataset[1]['gt'].shape == (3, 24, 40)


def test_missing_lmdb_key_is_named(image_folder, tmp_path):
    lmdb_path = make_lmdb(image_folder, tmp_path)
    with open(f'{lmdb_path}/meta_info.txt', 'a') as meta:
        meta.write('ghost.png (8,8,3) 1\n')
    dataset = GaussianNoiseDataset(val_opt(lmdb_path, io_backend={'type': 'lmdb'}))
    with pytest.raises(LmdbError, match='ghost'):
        dataset[sorted(NAMES + ['ghost']).index('ghost')]


def schema_check(opt):
    """The schema's check of these options, as an option file's ``datasets.<phase>`` (None: key left out)."""
    check_dataset_options({'type': 'GaussianNoiseDataset', **{k: v for k, v in opt.items() if v is not None}})


@pytest.mark.parametrize('opt, message', [
    ({'dataroot_gt': None}, 'datasets.val.dataroot_gt is missing'),
    ({'dataroot_gt': '/nonexistent/folder'}, "datasets.val.dataroot_gt = '/nonexistent/folder': no such folder"),
    ({'sigma_test': None}, 'datasets.val.sigma_test is missing'),
    ({'test_noise': 'seed0'}, "datasets.val.test_noise = 'seed0': expected one of 'name_seeded', 'authors'"),
])
def test_option_errors(image_folder, opt, message):
    schema_check(val_opt(image_folder))
    with pytest.raises(OptionsError, match=message):
        schema_check(val_opt(image_folder, **opt))


@pytest.mark.parametrize('opt, message', [({'gt_size': None}, 'datasets.train.gt_size is missing'),
                                          ({'sigma_range': [20, 10]}, r'sigma_range = \[20, 10\]: expected \[low, high\]')])
def test_training_option_errors(image_folder, opt, message):
    schema_check(train_opt(image_folder))
    with pytest.raises(OptionsError, match=message):
        schema_check(train_opt(image_folder, **opt))
