"""Blind Gaussian colour denoising: clean images in, ``(gt + N(0, sigma / 255), gt)`` pairs out."""
import zlib
from os import path as osp

import numpy as np
import torch
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from hint_plugin.data.authors_denoising_dataset import authors_test_noise
from hint_plugin.data.clean_image_dataset import CleanImageDataset


@DATASET_REGISTRY.register()
class GaussianNoiseDataset(CleanImageDataset):
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

    Listing, reading and the errors naming bad data: :class:`CleanImageDataset`. The options are checked by the
    schema when the option file is read (:func:`hint_plugin.utils.option_schema.check_dataset_options` checks a
    dict built in Python the same way).

    Args:
        opt (dict): Config. It contains the following keys:
            dataroot_gt (str): folder of clean images (sub-folders not read), or an LMDB (``*.lmdb``) with ``io_backend: {type: lmdb}``.
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
        super().__init__(opt)
        if self.training:
            self.sigma_range = [float(s) for s in opt.get('sigma_range', (0, 50))]
            self.gt_size = opt['gt_size']
        else:
            self.sigma_test = float(opt['sigma_test'])
            self.seed = int(opt.get('seed', 0))
            self.test_noise = opt.get('test_noise', 'name_seeded')

    def _validation_rng(self, path):
        """A generator seeded by ``(seed, image name without folder or extension, sigma_test)``."""
        name = osp.splitext(osp.basename(path))[0]
        return np.random.default_rng([self.seed, zlib.crc32(f'{name}|{self.sigma_test!r}'.encode())])

    def __getitem__(self, index):
        gt_path = self.paths[index]
        img_gt = self.read(gt_path)  # BGR, at the file's own bit depth
        if self.training:
            self.check_size(img_gt, gt_path, self.gt_size, 'the training crop')
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
