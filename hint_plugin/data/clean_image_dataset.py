"""What the two Gaussian-noise datasets share (:class:`~hint_plugin.data.gaussian_noise_dataset.GaussianNoiseDataset`
and the authors' :class:`~hint_plugin.data.authors_denoising_dataset.Dataset_GaussianDenoising`): the clean images
of ``dataroot_gt`` listed (a folder, an LMDB, or the authors' ``meta_info_file``), read through BasicSR's
``FileClient``, and every problem with them named as a :class:`~hint_plugin.errors.DataError` (which file or LMDB
key, what was expected).

The options are checked by the schema when the option file is read (:mod:`hint_plugin.utils.option_schema`,
``sigma_test`` at test time and a folder/LMDB mismatch included); these classes trust them.
"""
from os import path as osp

import cv2
from basicsr.utils import FileClient, scandir
from torch.utils import data as data

from hint_plugin.data.decoding import decode_training_image
from hint_plugin.data.lmdb_check import check_lmdb, meta_info_keys
from hint_plugin.errors import DataError, LmdbError
from hint_plugin.utils.image_io import IMAGE_EXTENSIONS, SCANDIR_SUFFIXES


class CleanImageDataset(data.Dataset):
    """Clean images of ``dataroot_gt``, one item each; subclasses add the noise (``__getitem__``).

    Listing: the image files of the folder, sorted (sub-folders too when ``recursive``), or the keys of the
    LMDB's ``meta_info.txt`` (``io_backend: {type: lmdb}``; sorted when ``sort_lmdb_keys``, else in the file's
    order), or the lines of ``meta_info_file`` (relative to the folder). An empty listing, a damaged LMDB or one
    without ``meta_info.txt`` is refused when the dataset is built; a key missing from the LMDB, a file that
    cannot be read or decoded (truncated, corrupted, not an image) and an image smaller than the crop when it
    is read.
    """

    recursive = False  # list the images of sub-folders too
    sort_lmdb_keys = True  # the LMDB keys sorted (True) or in meta_info.txt's order

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.training = opt['phase'] == 'train'
        self.gt_folder = opt['dataroot_gt']
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.is_lmdb = self.io_backend_opt['type'] == 'lmdb'
        if self.is_lmdb:
            self.io_backend_opt.update(db_paths=[self.gt_folder], client_keys=['gt'])
        self.file_client = None
        self.paths = self.list_images()
        if not self.paths:
            raise DataError(f"{type(self).__name__}: dataroot_gt '{self.gt_folder}' holds no images (expected "
                            f'files ending in {", ".join(IMAGE_EXTENSIONS)})')

    def list_images(self):
        """The file paths or LMDB keys of the clean images (see the class docstring)."""
        if self.is_lmdb:
            check_lmdb(self.gt_folder)  # a truncated data.mdb named now, not a SIGBUS later
            keys = meta_info_keys(self.gt_folder)
            if keys is None:
                raise LmdbError(f"{type(self).__name__}: dataroot_gt '{self.gt_folder}' is not a BasicSR LMDB: no "
                                'meta_info.txt in it (tools/create_lmdb.py writes one)')
            return sorted(keys) if self.sort_lmdb_keys else keys
        if self.opt.get('meta_info_file'):
            with open(self.opt['meta_info_file'], encoding='utf-8') as file:
                return [osp.join(self.gt_folder, line.split(' ')[0].strip()) for line in file if line.strip()]
        names = scandir(self.gt_folder, suffix=SCANDIR_SUFFIXES, recursive=self.recursive)
        return [osp.join(self.gt_folder, name) for name in sorted(names)]  # sorted: runs agree across file systems

    def where(self, path):
        """How a message names the image stored under ``path``."""
        if self.is_lmdb:
            return f"LMDB key '{path}' of '{self.gt_folder}'"
        return f"file '{path}'"

    def decode(self, content):
        """Encoded image bytes -> float32 ``(H, W, C)`` in [0, 1]: BGR at the file's own bit depth. Bytes that
        are no image raise ``cv2.error`` or ``AttributeError``."""
        return decode_training_image(content)

    def read(self, path):
        """The clean image stored under ``path`` (file or LMDB key), decoded by :meth:`decode`."""
        if self.file_client is None:
            backend = dict(self.io_backend_opt)
            self.file_client = FileClient(backend.pop('type'), **backend)
        try:
            content = self.file_client.get(path, 'gt')
        except OSError as error:
            raise DataError(f'{type(self).__name__}: cannot read the {self.where(path)}: '
                            f'{error.strerror or error}') from None
        if content is None:
            raise LmdbError(f'{type(self).__name__}: the {self.where(path)} is listed in meta_info.txt but not in '
                            'the LMDB')
        try:
            return self.decode(content)
        except (AttributeError, cv2.error):  # cv2.imdecode returns None (or raises) on bytes it cannot decode
            raise DataError(f'{type(self).__name__}: cannot decode the {self.where(path)} ({len(content)} bytes): '
                            'truncated, corrupted or not an image') from None

    def check_size(self, image, path, size, crop):
        """Raise :class:`DataError` unless ``image`` is at least ``size x size`` (``crop`` names the crop)."""
        height, width = image.shape[:2]
        if height < size or width < size:
            raise DataError(f"{type(self).__name__}: the {self.where(path)} is {height}x{width}, smaller than "
                            f'{crop} gt_size {size}; remove it or lower gt_size')

    def __len__(self):
        return len(self.paths)
