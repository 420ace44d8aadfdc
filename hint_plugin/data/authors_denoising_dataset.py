"""The HINT authors' ``Dataset_GaussianDenoising`` by its name, so their denoising option file runs.

Clean images in (``dataroot_gt``; ``dataroot_lq: none``), ``(gt + noise, gt)`` pairs out, as the authors'
``basicsr/data/paired_image_dataset.py`` makes them:

* training: reflect padding to ``gt_size``, a random crop, ``geometric_augs``; a sigma drawn by ``sigma_type``
  from ``sigma_range`` (``constant``: the number itself; ``random``: uniform over ``[low, high]``; ``choice``: one
  of the list), then the authors' "align with PromptIR" step: with probability 3/4 that sigma is replaced by
  15, 25 or 50 (one each, ``random.randint(0, 3)``), so ``random`` over [0, 50] is really that mixture.
  ``align_with_promptir: false`` (this plugin's option) keeps the drawn sigma. The noise is
  ``torch.randn`` of the CHW patch times ``sigma / 255``; nothing is clipped;
* validation / test: the central ``gt_size`` crop when ``gt_size`` is given, then noise of ``sigma_test``
  drawn as the authors do after ``np.random.seed(0)`` for every image: ``normal(0, sigma / 255)`` in the HWC
  order of the image. It comes from a local ``np.random.RandomState(0)`` (the same numbers) so the global
  NumPy generator is left alone;
* ``in_ch: 3`` reads RGB, ``in_ch: 1`` grayscale (then the network needs ``inp_channels: 1``).
"""
import random
from numbers import Real
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.data.data_util import paths_from_lmdb
from basicsr.data.transforms import paired_random_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor, scandir
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from hint_plugin.data.authors_transforms import center_crop, random_geometric_augment, reflect_pad_to
from hint_plugin.data.decoding import decode_training_image
from hint_plugin.errors import DataError, OptionsError
from hint_plugin.utils.image_io import SCANDIR_SUFFIXES

SIGMA_TYPES = ('constant', 'random', 'choice')
PROMPTIR_SIGMAS = (15, 25, 50)


def draw_sigma(sigma_type, sigma_range, align_with_promptir=True, rng=random):
    """A training noise level (0-255 scale), drawn as the authors' dataset does (see the module docstring).

    ``rng`` is a ``random.Random`` or the ``random`` module; draws: one for ``random`` / ``choice``, then one
    ``randint(0, 3)`` when ``align_with_promptir``.
    """
    if sigma_type == 'constant':
        sigma = sigma_range
    elif sigma_type == 'random':
        sigma = rng.uniform(sigma_range[0], sigma_range[1])
    else:
        sigma = rng.choice(sigma_range)
    if align_with_promptir:
        replaced = rng.randint(0, 3)
        if replaced < len(PROMPTIR_SIGMAS):
            sigma = PROMPTIR_SIGMAS[replaced]
    return float(sigma)


def authors_test_noise(shape, sigma):
    """The noise of the authors' validation / test: ``np.random.seed(0)`` then ``np.random.normal(0, sigma / 255,
    shape)`` with ``shape`` the HWC image shape; float64, from a local ``RandomState(0)`` (the same numbers)."""
    return np.random.RandomState(0).normal(0, sigma / 255.0, shape)


@DATASET_REGISTRY.register()
class Dataset_GaussianDenoising(data.Dataset):  # noqa: N801  (the authors' name)
    """Gaussian denoising in the authors' dialect (module docstring).

    Args:
        opt (dict): ``dataroot_gt`` (folder, or LMDB with ``io_backend: {type: lmdb}``), ``dataroot_lq``
            (``none`` or absent), ``phase``, ``in_ch`` (1 or 3), ``gt_size``, ``geometric_augs``; training:
            ``sigma_type`` and ``sigma_range``, ``align_with_promptir`` (default true); otherwise ``sigma_test``.

    Items: ``lq`` (noisy) and ``gt`` float32 ``(in_ch, H, W)`` tensors, ``lq_path`` = ``gt_path``.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.where = f"datasets.{opt.get('name', '?')}"
        self.phase = opt['phase']
        self.training = self.phase == 'train'
        self.in_ch = opt.get('in_ch', 3)
        if self.in_ch not in (1, 3):
            raise OptionsError(f'{self.where}.in_ch must be 1 (grayscale) or 3 (RGB), got {self.in_ch!r}')
        if str(opt.get('dataroot_lq', 'none')).lower() not in ('none', 'null', '~'):
            raise OptionsError(f"{self.where}.dataroot_lq must be none: the noisy images are made from "
                                       f"dataroot_gt, got {opt['dataroot_lq']!r}")
        if opt.get('scale', 1) != 1:
            raise OptionsError(f'{self.where}.scale must be 1, got {opt["scale"]!r}')
        self.gt_size = opt.get('gt_size')
        if self.training:
            self._check_training_options(opt)
        else:
            self.sigma_test = opt.get('sigma_test')
            if isinstance(self.sigma_test, bool) or not isinstance(self.sigma_test, Real) or self.sigma_test < 0:
                raise OptionsError(f'{self.where}.sigma_test must be a noise level >= 0 on the 0-255 '
                                           f'scale, got {self.sigma_test!r}')
        if self.gt_size is not None and (isinstance(self.gt_size, bool) or not isinstance(self.gt_size, int)):
            raise OptionsError(f'{self.where}.gt_size must be an integer, got {self.gt_size!r}')

        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.file_client = None
        self.gt_folder = opt.get('dataroot_gt')
        if not self.gt_folder or not osp.isdir(self.gt_folder):
            raise OptionsError(f"{self.where}.dataroot_gt '{self.gt_folder}' does not exist "
                                       '(or is not a folder)')
        if self.io_backend_opt['type'] == 'lmdb':
            self.io_backend_opt.update(db_paths=[self.gt_folder], client_keys=['gt'])
            self.paths = paths_from_lmdb(self.gt_folder)
        elif opt.get('meta_info_file'):
            with open(opt['meta_info_file'], encoding='utf-8') as file:
                self.paths = [osp.join(self.gt_folder, line.split(' ')[0].strip()) for line in file if line.strip()]
        else:  # sorted, unlike the authors' directory order, so that runs agree across file systems
            self.paths = [osp.join(self.gt_folder, name)
                          for name in sorted(scandir(self.gt_folder, suffix=SCANDIR_SUFFIXES, recursive=True))]
        if not self.paths:
            raise OptionsError(f"{self.where}.dataroot_gt '{self.gt_folder}' holds no images")

    def _check_training_options(self, opt):
        self.sigma_type, self.sigma_range = opt.get('sigma_type'), opt.get('sigma_range')
        if self.sigma_type not in SIGMA_TYPES:
            raise OptionsError(f'{self.where}.sigma_type must be one of {", ".join(SIGMA_TYPES)}, '
                                       f'got {self.sigma_type!r}')
        number = (lambda v: isinstance(v, Real) and not isinstance(v, bool) and v >= 0)  # noqa: E731
        if self.sigma_type == 'constant':
            if isinstance(self.sigma_range, (list, tuple)) and len(self.sigma_range) == 1:
                self.sigma_range = self.sigma_range[0]
            valid = number(self.sigma_range)
            expected = 'one noise level'
        elif self.sigma_type == 'random':
            valid = (isinstance(self.sigma_range, (list, tuple)) and len(self.sigma_range) == 2
                     and all(map(number, self.sigma_range)) and self.sigma_range[0] <= self.sigma_range[1])
            expected = '[low, high] with 0 <= low <= high'
        else:
            valid = (isinstance(self.sigma_range, (list, tuple)) and len(self.sigma_range) > 0
                     and all(map(number, self.sigma_range)))
            expected = 'a non-empty list of noise levels'
        if not valid:
            raise OptionsError(f'{self.where}.sigma_range must be {expected} for sigma_type '
                                       f'{self.sigma_type} (0-255 scale), got {self.sigma_range!r}')
        self.align_with_promptir = opt.get('align_with_promptir', True)
        self.geometric_augs = opt.get('geometric_augs', False)
        for key in ('align_with_promptir', 'geometric_augs'):
            if not isinstance(getattr(self, key), bool):
                raise OptionsError(f'{self.where}.{key} must be true or false, got {getattr(self, key)!r}')
        if not isinstance(self.gt_size, int) or isinstance(self.gt_size, bool) or self.gt_size < 1:
            raise OptionsError(f'{self.where}.gt_size must be the training patch size, got {self.gt_size!r}')

    def _read(self, path):
        """The image at ``path`` as float32 ``(H, W, in_ch)`` in [0, 1], RGB when ``in_ch`` is 3."""
        content = self.file_client.get(path, 'gt')
        try:
            if self.in_ch == 3:  # at the file's own bit depth, as the plugin's other datasets
                return cv2.cvtColor(decode_training_image(content), cv2.COLOR_BGR2RGB)
            return imfrombytes(content, flag='grayscale', float32=True)[..., None]  # the authors' grey decoding
        except (AttributeError, cv2.error):  # cv2.imdecode returns None (or raises) on bytes it cannot decode
            raise DataError(f"{self.where}: cannot decode the image '{path}'") from None

    def __getitem__(self, index):
        if self.file_client is None:
            backend = dict(self.io_backend_opt)
            self.file_client = FileClient(backend.pop('type'), **backend)
        gt_path = self.paths[index % len(self.paths)]
        img_gt = self._read(gt_path)
        if self.training:
            img_gt, = reflect_pad_to(self.gt_size, img_gt)
            img_gt = paired_random_crop(img_gt, img_gt, self.gt_size, 1, gt_path)[0]
            if self.geometric_augs:
                img_gt, = random_geometric_augment(img_gt)
            img_gt = img2tensor(img_gt, bgr2rgb=False, float32=True)
            sigma = draw_sigma(self.sigma_type, self.sigma_range, self.align_with_promptir)
            img_lq = img_gt + torch.randn(img_gt.shape) * (sigma / 255.0)
        else:
            if self.gt_size is not None:
                try:
                    img_gt, = center_crop(self.gt_size, img_gt, name=f"image '{gt_path}'")
                except ValueError as error:
                    raise OptionsError(f'{self.where}: {error}') from None
            # in float64, then float32: what the authors' in-place ``float32 += float64`` gives
            img_lq = (img_gt + authors_test_noise(img_gt.shape, self.sigma_test)).astype(np.float32)
            img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=False, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths)
