"""GaussianNoiseDataset's ``test_noise: authors``: the noise of the authors' colour-denoising test script."""
import cv2
import numpy as np
import pytest
import torch

from hint_plugin.data.gaussian_noise_dataset import GaussianNoiseDataset


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(5)
    for name in ('a', 'b'):
        cv2.imwrite(str(tmp_path / f'{name}.png'), rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    return tmp_path


def test_authors_noise_is_their_script_replayed(folder):
    dataset = GaussianNoiseDataset({'dataroot_gt': str(folder), 'phase': 'val', 'sigma_test': 25,
                                    'test_noise': 'authors'})
    for index, name in enumerate(('a', 'b')):
        # their script: RGB float32 / 255, np.random.seed(0), in-place += normal(0, sigma / 255, HWC)
        img = np.float32(cv2.cvtColor(cv2.imread(str(folder / f'{name}.png')), cv2.COLOR_BGR2RGB)) / 255.
        np.random.seed(seed=0)
        img += np.random.normal(0, 25 / 255., img.shape)
        item = dataset[index]
        assert item['lq'].dtype == torch.float32 and item['lq'].shape == (3, 6, 7)
        np.testing.assert_array_equal(item['lq'].permute(1, 2, 0).numpy(), img)
        np.testing.assert_array_equal((item['gt'].permute(1, 2, 0).numpy() * 255).round(),
                                      cv2.cvtColor(cv2.imread(str(folder / f'{name}.png')), cv2.COLOR_BGR2RGB))
    first, second = dataset[0], dataset[1]  # same size: the same noise for every image
    torch.testing.assert_close(first['lq'] - first['gt'], second['lq'] - second['gt'], atol=1e-6, rtol=0)


def test_default_noise_differs_per_image(folder):
    dataset = GaussianNoiseDataset({'dataroot_gt': str(folder), 'phase': 'val', 'sigma_test': 25})
    first, second = dataset[0], dataset[1]
    assert not torch.allclose(first['lq'] - first['gt'], second['lq'] - second['gt'], atol=1e-3)
