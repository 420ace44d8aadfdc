"""Blind Gaussian colour denoising: clean images in, ``(gt + N(0, sigma / 255), gt)`` pairs out."""
import zlib
from numbers import Real
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.data.data_util import paths_from_folder, paths_from_lmdb
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data

from hint_plugin.data.decoding import decode_training_image
from hint_plugin.data.lmdb_check import check_lmdb
from hint_plugin.data.authors_denoising_dataset import authors_test_noise

TEST_NOISES = ('name_seeded', 'authors')


@DATASET_REGISTRY.register()
class GaussianNoiseDataset(data.Dataset):
    """Clean RGB images with additive white Gaussian noise, for blind colour denoising.

    The noisy image is ``lq = gt + sigma / 255 * n`` with ``n ~ N(0, 1)`` i.i.d. per pixel and channel,
    not clipped to [0, 1] (the CBSD68 / Restormer protocol).

    Training (``phase: train``): a random ``gt_size`` crop, flips / rotations, then ``sigma`` drawn uniformly
    from ``sigma_range``. Crop, augmentation and noise use Python's and NumPy's global generators, which
    BasicSR's ``worker_init_fn`` seeds per worker.

    Validation / test (any other phase): the whole image with ``sigma = sigma_test`` and noise from a local
    generator seeded by ``(seed, image name, sigma)``, so every image gets the same noise whatever the order,
    the workers or the backend (folder file ``x.png`` and LMDB key ``x`` share the name ``x``). With
    ``test_noise: authors`` the noise is instead that of the HINT authors' colour-denoising test script (the
    paper's numbers): ``np.random.seed(0)`` before every image, ``normal(0, sigma / 255)`` drawn in the RGB
    image's ``(H, W, 3)`` layout and added in float32; every image of a given size gets the same noise.

    Args:
        opt (dict): Config. It contains the following keys:
            dataroot_gt (str): folder of clean images, or an LMDB (``*.lmdb``) with ``io_backend: {type: lmdb}``.
            io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}``.
            phase (str): 'train' or 'val' / 'test' (BasicSR's option parser sets it).
            sigma_range (list[float]): training noise levels ``[low, high]`` on the 0-255 scale. Default: [0, 50].
            sigma_test (float): validation noise level on the 0-255 scale (required unless training).
            gt_size (int): training crop size (required for training).
            use_hflip (bool): random horizontal flips while training. Default: True.
            use_rot (bool): random 90-degree rotations and vertical flips while training. Default: True.
            seed (int): base seed of the validation noise. Default: 0.
            test_noise (str): validation noise, ``name_seeded`` (default) or ``authors`` (see above).

    Returns (per item):
        dict: ``lq`` and ``gt`` float32 RGB tensors ``(3, H, W)`` (``gt`` in [0, 1]), ``lq_path`` and
        ``gt_path`` (the file path, or the LMDB key), ``sigma`` (float, 0-255 scale).
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.file_client = None
        if 'phase' not in opt:
            raise ValueError("GaussianNoiseDataset: option 'phase' is required ('train', 'val' or 'test')")
        self.training = opt['phase'] == 'train'

        self.gt_folder = opt.get('dataroot_gt')
        if not self.gt_folder:
            raise ValueError("GaussianNoiseDataset: option 'dataroot_gt' is required (a folder or an LMDB)")
        if not osp.isdir(self.gt_folder):
            raise FileNotFoundError(f"GaussianNoiseDataset: dataroot_gt '{self.gt_folder}' does not exist "
                                    '(or is not a folder)')
        self.is_lmdb = self.io_backend_opt['type'] == 'lmdb'
        if self.is_lmdb:
            self.io_backend_opt['db_paths'] = [self.gt_folder]
            self.io_backend_opt['client_keys'] = ['gt']
            check_lmdb(self.gt_folder)  # a truncated data.mdb named now, not a SIGBUS later
            self.paths = sorted(paths_from_lmdb(self.gt_folder))
        else:
            self.paths = sorted(paths_from_folder(self.gt_folder))
        if not self.paths:
            raise ValueError(f"GaussianNoiseDataset: no images in dataroot_gt '{self.gt_folder}'")

        if self.training:
            self.sigma_range = [float(s) for s in opt.get('sigma_range', (0, 50))]
            if len(self.sigma_range) != 2 or not 0 <= self.sigma_range[0] <= self.sigma_range[1]:
                raise ValueError(f'GaussianNoiseDataset: sigma_range must be [low, high] with 0 <= low <= high, '
                                 f"got {opt.get('sigma_range')!r}")
            self.gt_size = opt.get('gt_size')
            if isinstance(self.gt_size, bool) or not isinstance(self.gt_size, int) or self.gt_size < 1:
                raise ValueError(f"GaussianNoiseDataset: option 'gt_size' must be a positive int for training, "
                                 f'got {self.gt_size!r}')
        else:
            self.sigma_test = opt.get('sigma_test')
            if isinstance(self.sigma_test, bool) or not isinstance(self.sigma_test, Real) or self.sigma_test < 0:
                raise ValueError(f"GaussianNoiseDataset: option 'sigma_test' must be a number >= 0 for phase "
                                 f"'{opt['phase']}', got {self.sigma_test!r}")
            self.sigma_test = float(self.sigma_test)
            self.seed = int(opt.get('seed', 0))
            self.test_noise = opt.get('test_noise', 'name_seeded')
            if self.test_noise not in TEST_NOISES:
                raise ValueError(f"GaussianNoiseDataset: option 'test_noise' must be one of {', '.join(TEST_NOISES)}, "
                                 f'got {self.test_noise!r}')

    def _read(self, path):
        """Read ``path`` (file or LMDB key) as a float32 BGR ``(H, W, 3)`` array in [0, 1]."""
        where = f"LMDB key '{path}' of {self.gt_folder}" if self.is_lmdb else f"file '{path}'"
        img_bytes = self.file_client.get(path, 'gt')
        if img_bytes is None:
            raise KeyError(f'GaussianNoiseDataset: {where} not found')
        try:
            return decode_training_image(img_bytes)  # 16-bit images keep their 16 bits
        except (AttributeError, cv2.error) as err:  # cv2.imdecode returns None or raises on bad bytes
            raise ValueError(f'GaussianNoiseDataset: cannot decode the image in {where}') from err

    def _validation_rng(self, path):
        """A generator seeded by ``(seed, image name without folder or extension, sigma_test)``."""
        name = osp.splitext(osp.basename(path))[0]
        return np.random.default_rng([self.seed, zlib.crc32(f'{name}|{self.sigma_test!r}'.encode())])

    def __getitem__(self, index):
        if self.file_client is None:
            backend_opt = dict(self.io_backend_opt)
            self.file_client = FileClient(backend_opt.pop('type'), **backend_opt)

        gt_path = self.paths[index]
        img_gt = self._read(gt_path)
        if self.training:
            height, width = img_gt.shape[:2]
            if height < self.gt_size or width < self.gt_size:
                raise ValueError(f"GaussianNoiseDataset: image '{gt_path}' ({height}x{width}) is smaller than "
                                 f'gt_size {self.gt_size}; remove it or lower gt_size')
            img_gt = paired_random_crop(img_gt, img_gt, self.gt_size, 1, gt_path)[0]  # one crop, no LQ yet
            img_gt = augment(img_gt, self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
            sigma, rng = float(np.random.uniform(*self.sigma_range)), np.random
        elif self.test_noise == 'authors':
            img_rgb = np.ascontiguousarray(img_gt[..., ::-1])  # HWC RGB, as their script loads it
            img_lq = (img_rgb + authors_test_noise(img_rgb.shape, self.sigma_test)).astype(np.float32)
            img_gt, img_lq = img2tensor([img_rgb, img_lq], bgr2rgb=False, float32=True)
            return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path, 'sigma': self.sigma_test}
        else:
            sigma, rng = self.sigma_test, self._validation_rng(gt_path)

        img_gt = img2tensor(img_gt, bgr2rgb=True, float32=True)
        noise = rng.standard_normal(tuple(img_gt.shape)) * (sigma / 255.)
        img_lq = img_gt + torch.from_numpy(noise.astype(np.float32))
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path, 'sigma': sigma}

    def __len__(self):
        return len(self.paths)
