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

import cv2
import numpy as np
import torch
from basicsr.data.transforms import paired_random_crop
from basicsr.utils import imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from hint_plugin.data.authors_transforms import center_crop, random_geometric_augment, reflect_pad_to
from hint_plugin.data.clean_image_dataset import CleanImageDataset
from hint_plugin.data.decoding import decode_training_image

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
class Dataset_GaussianDenoising(CleanImageDataset):  # noqa: N801  (the authors' name)
    """Gaussian denoising in the authors' dialect (module docstring).

    Where it differs from :class:`~hint_plugin.data.gaussian_noise_dataset.GaussianNoiseDataset`, as the
    authors' code does: sub-folders listed too, LMDB keys in ``meta_info.txt``'s order, ``meta_info_file``,
    grayscale with ``in_ch: 1``, RGB decoding, reflect padding and the authors' sigma draw in training, the
    central ``gt_size`` crop and the authors' noise in validation. Listing, reading and the errors naming bad
    data: :class:`~hint_plugin.data.clean_image_dataset.CleanImageDataset`; the options are checked by the
    schema when the option file is read.

    Args:
        opt (dict): ``dataroot_gt`` (folder, or LMDB with ``io_backend: {type: lmdb}``), ``dataroot_lq``
            (``none`` or absent), ``phase``, ``in_ch`` (1 or 3), ``gt_size``, ``geometric_augs``; training:
            ``sigma_type`` and ``sigma_range``, ``align_with_promptir`` (default true); otherwise ``sigma_test``.

    Items: ``lq`` (noisy) and ``gt`` float32 ``(in_ch, H, W)`` tensors, ``lq_path`` = ``gt_path``.
    """

    recursive = True
    sort_lmdb_keys = False

    def __init__(self, opt):
        super().__init__(opt)
        self.in_ch = opt.get('in_ch', 3)
        self.gt_size = opt.get('gt_size')
        if self.training:
            self.sigma_type, self.sigma_range = opt['sigma_type'], opt['sigma_range']
            if self.sigma_type == 'constant' and isinstance(self.sigma_range, (list, tuple)):
                self.sigma_range = self.sigma_range[0]  # [50] is read as 50
            self.align_with_promptir = opt.get('align_with_promptir', True)
            self.geometric_augs = opt.get('geometric_augs', False)
        else:
            self.sigma_test = opt['sigma_test']

    def decode(self, content):
        """The image as float32 ``(H, W, in_ch)`` in [0, 1], RGB when ``in_ch`` is 3."""
        if self.in_ch == 3:  # at the file's own bit depth, as the plugin's other datasets
            return cv2.cvtColor(decode_training_image(content), cv2.COLOR_BGR2RGB)
        return imfrombytes(content, flag='grayscale', float32=True)[..., None]  # the authors' grey decoding

    def __getitem__(self, index):
        gt_path = self.paths[index % len(self.paths)]
        img_gt = self.read(gt_path)
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
                self.check_size(img_gt, gt_path, self.gt_size, 'the validation crop')
                img_gt, = center_crop(self.gt_size, img_gt)
            # in float64, then float32: what the authors' in-place ``float32 += float64`` gives
            img_lq = (img_gt + authors_test_noise(img_gt.shape, self.sigma_test)).astype(np.float32)
            img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=False, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path}
