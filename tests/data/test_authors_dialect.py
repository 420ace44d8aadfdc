"""The pieces of the HINT authors' dialect: transforms, datasets, sigma sampling, test noise, option checks."""
import random

import cv2
import numpy as np
import pytest
import torch

from hint_plugin.data.authors_denoising_dataset import (PROMPTIR_SIGMAS, Dataset_GaussianDenoising,
                                                        authors_test_noise, draw_sigma)
from hint_plugin.data.authors_paired_dataset import Dataset_PairedImage, dehaze_pairs
from hint_plugin.data.authors_transforms import (center_crop, geometric_augment, random_geometric_augment,
                                                 reflect_pad_to)
from hint_plugin.errors import DataError, OptionsError
from hint_plugin.models.image_clean_model import float_image, skipped_stages
from hint_plugin.utils.option_schema import (MODEL_KEYS, check_dataset_options, check_launcher_fits, check_section,
                                             rule_input_channels)

IMAGE = np.arange(6, dtype=np.float32).reshape(2, 3, 1)  # [[0 1 2], [3 4 5]]


def test_geometric_modes_are_the_authors_eight():
    expected = {0: IMAGE, 1: np.flipud(IMAGE), 2: np.rot90(IMAGE), 3: np.flipud(np.rot90(IMAGE)),
                4: np.rot90(IMAGE, 2), 5: np.flipud(np.rot90(IMAGE, 2)), 6: np.rot90(IMAGE, 3),
                7: np.flipud(np.rot90(IMAGE, 3))}
    results = [geometric_augment(IMAGE, mode) for mode in range(8)]
    for mode, result in enumerate(results):
        np.testing.assert_array_equal(result, expected[mode])
    assert len({result.tobytes() + bytes(result.shape) for result in results}) == 8  # all distinct
    assert geometric_augment(IMAGE, 2)[:, :, 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    with pytest.raises(ValueError, match='0..7'):
        geometric_augment(IMAGE, 8)


def test_random_geometric_augment_applies_one_mode_to_every_image():
    for seed in range(10):
        first, second = random_geometric_augment(IMAGE, IMAGE + 10, rng=random.Random(seed))
        np.testing.assert_array_equal(second, first + 10)


def test_reflect_padding_mirrors_bottom_and_right_and_keeps_one_channel():
    padded, = reflect_pad_to(5, IMAGE)
    assert padded.shape == (5, 5, 1)
    assert padded[:, :, 0].tolist() == [[0, 1, 2, 2, 1], [3, 4, 5, 5, 4], [3, 4, 5, 5, 4], [0, 1, 2, 2, 1],
                                        [0, 1, 2, 2, 1]]
    same, = reflect_pad_to(2, IMAGE)
    assert same is IMAGE


def test_center_crop_takes_the_middle_and_names_small_images():
    image = np.arange(25).reshape(5, 5, 1)
    crop, = center_crop(3, image)
    assert crop[:, :, 0].tolist() == [[6, 7, 8], [11, 12, 13], [16, 17, 18]]
    with pytest.raises(ValueError, match=r'x\.png is 5x5, smaller than the validation crop gt_size 6'):
        center_crop(6, image, name='x.png')


class ScriptedRng:
    """A stand-in for ``random`` that returns scripted values and records the calls."""

    def __init__(self, randint=0, uniform=33.3):
        self.calls, self._randint, self._uniform = [], randint, uniform

    def uniform(self, low, high):
        self.calls.append(('uniform', low, high))
        return self._uniform

    def choice(self, values):
        self.calls.append(('choice', tuple(values)))
        return values[-1]

    def randint(self, low, high):
        self.calls.append(('randint', low, high))
        return self._randint


@pytest.mark.parametrize('replaced, expected', [(0, 15.0), (1, 25.0), (2, 50.0), (3, 33.3)])
def test_promptir_alignment_replaces_three_quarters_of_the_sigmas(replaced, expected):
    rng = ScriptedRng(randint=replaced)
    assert draw_sigma('random', [0, 50], rng=rng) == expected
    assert rng.calls == [('uniform', 0, 50), ('randint', 0, 3)]


def test_sigma_types_and_the_switch_that_turns_the_alignment_off():
    rng = ScriptedRng()
    assert draw_sigma('constant', 30, align_with_promptir=False, rng=rng) == 30.0
    assert draw_sigma('choice', [10, 20], align_with_promptir=False, rng=rng) == 20.0
    assert draw_sigma('random', [0, 50], align_with_promptir=False, rng=rng) == 33.3
    assert rng.calls == [('choice', (10, 20)), ('uniform', 0, 50)]  # no randint without the alignment
    rng = random.Random(0)
    draws = np.array([draw_sigma('random', [0, 50], rng=rng) for _ in range(4000)])
    for sigma in PROMPTIR_SIGMAS:  # ~1/4 each; a uniform draw hits these exact values with probability 0
        assert 0.22 < np.mean(draws == sigma) < 0.28


def write_images(folder, names, size, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def denoise_options(folder, **extra):
    opt = dict(name='val', phase='val', dataroot_gt=str(folder), dataroot_lq='none', in_ch=3, sigma_test=25,
               io_backend={'type': 'disk'}, scale=1)
    opt.update(extra)
    return opt


def test_authors_test_noise_is_numpy_seed_zero_in_hwc_order():
    np.random.seed(0)
    expected = np.random.normal(0, 25 / 255.0, (4, 5, 3))
    np.testing.assert_array_equal(authors_test_noise((4, 5, 3), 25), expected)


def test_denoising_validation_item_is_centre_crop_plus_the_authors_noise(tmp_path):
    write_images(tmp_path / 'clean', ['a.png'], (12, 10))
    item = Dataset_GaussianDenoising(denoise_options(tmp_path / 'clean', gt_size=8))[0]
    image = cv2.imread(str(tmp_path / 'clean' / 'a.png'))[2:10, 1:9, ::-1].astype(np.float32) / 255.0
    np.testing.assert_allclose(item['gt'].numpy().transpose(1, 2, 0), image, rtol=0, atol=1e-7)
    np.random.seed(0)
    noisy = (image + np.random.normal(0, 25 / 255.0, image.shape)).astype(np.float32)  # the authors' steps
    np.testing.assert_array_equal(item['lq'].numpy().transpose(1, 2, 0), noisy)
    gray = Dataset_GaussianDenoising(denoise_options(tmp_path / 'clean', in_ch=1))[0]
    assert gray['gt'].shape == gray['lq'].shape == (1, 12, 10)


def test_denoising_training_item_pads_crops_and_adds_noise(tmp_path):
    write_images(tmp_path / 'clean', ['a.png'], (6, 5))
    opt = denoise_options(tmp_path / 'clean', phase='train', sigma_type='constant', sigma_range=50,
                          align_with_promptir=False, gt_size=8, geometric_augs=True)
    torch.manual_seed(0)
    item = Dataset_GaussianDenoising(opt)[0]
    assert item['gt'].shape == (3, 8, 8)
    assert 0.15 < float((item['lq'] - item['gt']).std()) < 0.25  # sigma 50 / 255 = 0.196


@pytest.mark.parametrize('change, message', [
    ({'sigma_type': 'uniform'}, "sigma_type = 'uniform': expected one of 'constant', 'random', 'choice'"),
    ({'sigma_range': [50]}, r'sigma_range = \[50\]: expected \[low, high\] with 0 <= low <= high for sigma_type random'),
    ({'sigma_type': 'constant', 'sigma_range': [5, 9]}, r'sigma_range = \[5, 9\]: expected one noise level'),
    ({'dataroot_lq': 'noisy/'}, "dataroot_lq = 'noisy/': expected none"),
    ({'in_ch': 2}, 'in_ch = 2: expected one of 1, 3'),
    ({'align_with_promptir': 'yes'}, "align_with_promptir = 'yes': expected true or false"),
    ({'scale': 2}, 'scale = 2: expected 1'),
    ({'gt_size': None}, 'datasets.val.gt_size is missing'),
])
def test_denoising_options_are_refused_by_name(tmp_path, change, message):
    write_images(tmp_path / 'clean', ['a.png'], (6, 5))
    opt = denoise_options(tmp_path / 'clean', phase='train', sigma_type='random', sigma_range=[0, 50], gt_size=4,
                          type='Dataset_GaussianDenoising')
    check_dataset_options(opt)  # as given, they pass
    opt.update(change)
    with pytest.raises(OptionsError, match=message):
        check_dataset_options({key: value for key, value in opt.items() if value is not None})


def test_dehaze_pairs_hazy_images_with_the_clear_image_of_their_id(tmp_path):
    write_images(tmp_path / 'hazy' / 'part1', ['0001_0.8_0.1.jpg', '0002_0.9_0.2.jpg'], (4, 4))
    write_images(tmp_path / 'hazy' / 'part2', ['0001_0.95_0.08.jpg'], (4, 4))
    write_images(tmp_path / 'clear', ['0001.png', '0002.png'], (4, 4))
    pairs = dehaze_pairs(str(tmp_path / 'hazy'), str(tmp_path / 'clear'))
    assert [(p['lq_path'].split('hazy/')[1], p['gt_path'].split('clear/')[1]) for p in pairs] == [
        ('part1/0001_0.8_0.1.jpg', '0001.png'), ('part1/0002_0.9_0.2.jpg', '0002.png'),
        ('part2/0001_0.95_0.08.jpg', '0001.png')]
    listed = tmp_path / 'list.txt'
    listed.write_text('part2/0001_0.95_0.08.jpg\n')
    assert len(dehaze_pairs(str(tmp_path / 'hazy'), str(tmp_path / 'clear'), str(listed))) == 1
    (tmp_path / 'clear' / '0002.png').unlink()
    with pytest.raises(DataError, match=r"0002_0.9_0.2.jpg' needs exactly one clear image named '0002"):
        dehaze_pairs(str(tmp_path / 'hazy'), str(tmp_path / 'clear'))


def test_paired_training_item_is_padded_to_the_patch(tmp_path):
    write_images(tmp_path / 'lq', ['a.png'], (6, 5), seed=1)
    write_images(tmp_path / 'gt', ['a.png'], (6, 5), seed=2)
    opt = dict(name='train', phase='train', type='Dataset_PairedImage', dataroot_lq=str(tmp_path / 'lq'),
               dataroot_gt=str(tmp_path / 'gt'), io_backend={'type': 'disk'}, scale=1, gt_size=8,
               geometric_augs=False, filename_tmpl='{}')
    item = Dataset_PairedImage(opt)[0]
    gt = cv2.imread(str(tmp_path / 'gt' / 'a.png'))[..., ::-1].astype(np.float32) / 255.0
    expected = cv2.copyMakeBorder(gt, 0, 2, 0, 3, cv2.BORDER_REFLECT)
    np.testing.assert_allclose(item['gt'].numpy().transpose(1, 2, 0), expected, atol=1e-7)
    assert item['lq'].shape == (3, 8, 8)
    check_dataset_options(opt)
    with pytest.raises(OptionsError, match="datasets.train.use_hflip: the authors' datasets do not read it; "
                                           'geometric_augs: true'):
        check_dataset_options(dict(opt, use_hflip=True))


def test_model_options_refused_by_name():
    base = {'model_type': 'ImageCleanModel', 'num_gpu': 2, 'network_g': {'type': 'HINT'}, 'datasets': {}}
    with pytest.raises(OptionsError, match='torchrun --nproc_per_node=2'):
        check_launcher_fits(base, 'none')
    check_launcher_fits(base, 'pytorch')  # one process per GPU is the authors' set-up
    check_launcher_fits(dict(base, model_type='HINTModel'), 'none')  # its batch is split as BasicSR splits it
    with pytest.raises(OptionsError, match=r'datasets.train.in_ch is 1 but network_g.inp_channels is 3'):
        rule_input_channels(dict(base, datasets={'train': {'in_ch': 1}}), is_train=True)
    rule_input_channels(dict(base, datasets={'train': {'in_ch': 1}}, network_g={'type': 'HINT', 'inp_channels': 1}),
                        is_train=True)
    context = {'options': base, 'is_train': False, 'check_paths': False}
    with pytest.raises(OptionsError, match="val.use_image = 'no': expected true or false"):
        check_section('val', {'save_img': False, 'use_image': 'no'}, MODEL_KEYS['ImageCleanModel']['val'], context)


def test_stages_above_gt_size_and_the_float_metric_image():
    assert skipped_stages([128, 192, 256, 320, 384], 256) == [4, 5]
    output = torch.tensor([[[[0.5, 1.2]], [[0.25, -0.1]], [[1.0, 0.0]]]])  # (1, 3, 1, 2), RGB
    image = float_image(output)
    assert image.dtype == np.float64 and image.shape == (1, 2, 3)
    np.testing.assert_allclose(image[0], [[255.0, 63.75, 127.5], [0.0, -0.1 * 255, 1.2 * 255]], rtol=1e-6)
    np.testing.assert_allclose(float_image(output, rgb2bgr=False)[0, 0], [127.5, 63.75, 255.0])
