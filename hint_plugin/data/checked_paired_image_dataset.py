"""BasicSR's ``PairedImageDataset`` with errors that name the bad data.

BasicSR 1.4.2 reports a corrupted image as ``'NoneType' object has no attribute 'astype'``, LMDBs with
different keys as ``Keys in lq_folder and gt_folder are different.``, and an lq/gt pair of different sizes
either as a scale mismatch without file names (training) or not at all (validation crops the gt silently).
:class:`CheckedPairedImageDataset` takes the same options and returns the same items, and says which file or
LMDB key is wrong, and how.
"""
from os import path as osp

import cv2
from basicsr.data.data_util import paths_from_lmdb, scandir
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, bgr2ycbcr, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torchvision.transforms.functional import normalize

from hint_plugin.data.decoding import decode_training_image
from hint_plugin.data.lmdb_check import check_lmdb
from hint_plugin.errors import DataError
from hint_plugin.utils.messages import listing


def lmdb_keys(folder, side):
    """The keys BasicSR reads from ``folder/meta_info.txt`` (``side``: 'lq' or 'gt', for the message)."""
    meta_info = osp.join(folder, 'meta_info.txt')
    if not osp.isfile(meta_info):
        raise DataError(f"dataroot_{side} '{folder}' is not a BasicSR LMDB: no meta_info.txt in it "
                              '(tools/create_lmdb.py writes one)')
    return paths_from_lmdb(folder)


def check_same_keys(lq_keys, gt_keys, lq_where, gt_where, noun='key'):
    """Raise :class:`DataError` naming a few keys of each side that the other lacks."""
    lq_keys, gt_keys = set(lq_keys), set(gt_keys)
    lq_only, gt_only = lq_keys - gt_keys, gt_keys - lq_keys
    if lq_only or gt_only:
        parts = [f'{listing(only, noun)} of {have} missing from {lack}'
                 for only, have, lack in ((gt_only, gt_where, lq_where), (lq_only, lq_where, gt_where)) if only]
        raise DataError('lq and gt do not hold the same images: ' + '; '.join(parts))


def check_folder_pairs(lq_folder, gt_folder, filename_tmpl):
    """Raise :class:`DataError` naming a few unpaired files where BasicSR's ``paired_paths_from_folder``
    (``gt/X.ext`` with ``lq/<filename_tmpl.format(X)>.ext``) would assert."""
    for side, folder in (('lq', lq_folder), ('gt', gt_folder)):
        if not osp.isdir(folder):
            raise DataError(f"dataroot_{side} '{folder}' does not exist (or is not a folder)")
    expected_lq = [f'{filename_tmpl.format(stem)}{ext}' for stem, ext in map(osp.splitext, scandir(gt_folder))]
    check_same_keys(scandir(lq_folder), expected_lq, f"dataroot_lq '{lq_folder}'",
                    f"dataroot_gt '{gt_folder}' (named through filename_tmpl '{filename_tmpl}')", noun='file')


@DATASET_REGISTRY.register()
class CheckedPairedImageDataset(PairedImageDataset):
    """BasicSR's ``PairedImageDataset`` (same options, same items) that names the bad data.

    * An unreadable image raises :class:`DataError` naming the file, or the LMDB key and the LMDB.
    * lq and gt LMDBs (or folders) that hold different images are refused at construction, with a few of the
      keys (files) each side lacks.
    * An lq/gt pair whose sizes do not match (``gt = scale * lq``) names both images and both sizes. In
      validation, BasicSR crops a gt up to ``scale - 1`` pixels larger than ``scale * lq`` (super-resolution
      benchmarks); that is kept, anything else is refused.

    Items: ``lq`` ``(C, h, w)`` and ``gt`` ``(C, scale * h, scale * w)`` float32 RGB tensors in [0, 1] (or
    normalised by ``mean`` / ``std``), ``lq_path`` and ``gt_path`` (file paths or LMDB keys).
    """

    def __init__(self, opt):
        self.is_lmdb = opt['io_backend']['type'] == 'lmdb'
        lq_folder, gt_folder = opt['dataroot_lq'], opt['dataroot_gt']
        if self.is_lmdb:
            for folder in (lq_folder, gt_folder):
                check_lmdb(folder)  # a truncated data.mdb named now, not a SIGBUS later
            check_same_keys(lmdb_keys(lq_folder, 'lq'), lmdb_keys(gt_folder, 'gt'), f"'{lq_folder}'",
                            f"'{gt_folder}'")
        elif opt.get('meta_info_file') is None:
            check_folder_pairs(lq_folder, gt_folder, opt.get('filename_tmpl', '{}'))
        super().__init__(opt)

    def where(self, path, side):
        """How a message names the ``side`` ('lq' or 'gt') image stored under ``path``."""
        if self.is_lmdb:
            return f"{side} LMDB key '{path}' of '{getattr(self, side + '_folder')}'"
        return f"{side} file '{path}'"

    def read(self, path, side):
        """The ``side`` image at ``path`` (file or LMDB key) as float32 BGR ``(H, W, 3)`` in [0, 1]."""
        try:
            content = self.file_client.get(path, side)
        except OSError as error:
            raise DataError(f'cannot read the {self.where(path, side)}: {error.strerror or error}') from None
        if content is None:
            raise DataError(f'the {self.where(path, side)} is listed in meta_info.txt but not in the LMDB')
        try:
            return decode_training_image(content)  # 16-bit images keep their 16 bits
        except (AttributeError, cv2.error):  # cv2.imdecode returns None (or raises) on bytes it cannot decode
            raise DataError(f'cannot decode the {self.where(path, side)} '
                                  f'({len(content)} bytes): corrupted or not an image') from None

    def check_sizes(self, img_lq, img_gt, lq_path, gt_path):
        """Raise unless ``gt = scale * lq`` in height and width (validation: up to ``scale - 1`` more gt)."""
        scale = self.opt['scale']
        slack = scale - 1 if self.opt['phase'] != 'train' else 0
        (h_lq, w_lq), (h_gt, w_gt) = img_lq.shape[:2], img_gt.shape[:2]
        if not (0 <= h_gt - scale * h_lq <= slack and 0 <= w_gt - scale * w_lq <= slack):
            times = f'{scale} x ' if scale != 1 else ''
            raise DataError(f'the {self.where(lq_path, "lq")} is {h_lq}x{w_lq} but the '
                                  f'{self.where(gt_path, "gt")} is {h_gt}x{w_gt}; expected gt = {times}lq in '
                                  'height and width')

    def __getitem__(self, index):
        """The steps of BasicSR 1.4.2's ``PairedImageDataset.__getitem__``, with :meth:`read` and
        :meth:`check_sizes` in place of bare decoding."""
        if self.file_client is None:
            backend = dict(self.io_backend_opt)
            self.file_client = FileClient(backend.pop('type'), **backend)
        scale = self.opt['scale']
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        img_gt, img_lq = self.read(gt_path, 'gt'), self.read(lq_path, 'lq')
        self.check_sizes(img_lq, img_gt, lq_path, gt_path)

        if self.opt['phase'] == 'train':
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], scale, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt['use_hflip'], self.opt['use_rot'])
        if self.opt.get('color') == 'y':
            img_gt = bgr2ycbcr(img_gt, y_only=True)[..., None]
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]
        if self.opt['phase'] != 'train':
            img_gt = img_gt[0:img_lq.shape[0] * scale, 0:img_lq.shape[1] * scale, :]

        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}
