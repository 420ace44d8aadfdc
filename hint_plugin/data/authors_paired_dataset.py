"""The HINT authors' paired datasets by their names, so their option files run: ``Dataset_PairedImage``
(deraining, desnowing, LOL-v2) and ``Dataset_PairedImage_dehazeSOT`` (dehazing).

What they do, as the authors' ``basicsr/data/paired_image_dataset.py`` does it:

* training: both images reflect-padded up to ``gt_size`` when smaller, one random ``gt_size`` crop, then with
  ``geometric_augs: true`` one of the eight flips / quarter turns (:mod:`hint_plugin.data.authors_transforms`);
* ``Dataset_PairedImage`` validates and tests on whole images (a ``gt_size`` in its validation options is not
  read, by the authors either, and a warning says so); ``Dataset_PairedImage_dehazeSOT`` validates on the
  central ``gt_size`` crop and tests (``phase: test``) on whole images.

Errors name the file (see :class:`~hint_plugin.data.checked_paired_image_dataset.CheckedPairedImageDataset`,
whose reading, pairing and size checks these reuse).
"""
from os import path as osp

from basicsr.data.transforms import paired_random_crop
from basicsr.utils import FileClient, get_root_logger, img2tensor, scandir
from basicsr.utils.registry import DATASET_REGISTRY
from torchvision.transforms.functional import normalize

from hint_plugin.data.authors_transforms import center_crop, random_geometric_augment, reflect_pad_to
from hint_plugin.data.checked_paired_image_dataset import CheckedPairedImageDataset
from hint_plugin.errors import DataError
from hint_plugin.utils.image_io import SCANDIR_SUFFIXES



class AuthorsPairedPipeline:
    """Mixin: the authors' ``__getitem__`` for a :class:`CheckedPairedImageDataset` (its ``read``, ``paths``,
    ``check_sizes``); ``crop_in_validation`` chooses the validation centre crop of ``gt_size``."""

    crop_in_validation = False

    def read_authors_options(self, opt):
        """The keys the authors read (checked by the schema when the option file is read); a warning for a
        ``gt_size`` that validation does not read."""
        self.phase = opt['phase']
        self.geometric_augs = opt.get('geometric_augs', False) if self.phase == 'train' else False
        if self.phase == 'val' and not self.crop_in_validation and opt.get('gt_size') is not None:
            get_root_logger().warning(
                f"datasets.{opt.get('name', '?')}.gt_size ({opt['gt_size']}) is not read by "
                f'{type(self).__name__} in validation: it validates whole images, as the authors\' dataset does.')

    def __getitem__(self, index):
        if self.file_client is None:
            backend = dict(self.io_backend_opt)
            self.file_client = FileClient(backend.pop('type'), **backend)
        index = index % len(self.paths)
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        img_gt, img_lq = self.read(gt_path, 'gt'), self.read(lq_path, 'lq')
        self.check_sizes(img_lq, img_gt, lq_path, gt_path)

        gt_size = self.opt.get('gt_size')
        if self.phase == 'train':
            img_gt, img_lq = reflect_pad_to(gt_size, img_gt, img_lq)
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, gt_size, 1, gt_path)
            if self.geometric_augs:
                img_gt, img_lq = random_geometric_augment(img_gt, img_lq)
        elif self.phase == 'val' and self.crop_in_validation:
            try:
                img_gt, img_lq = center_crop(gt_size, img_gt, img_lq, name=f'the {self.where(gt_path, "gt")}')
            except ValueError as error:
                raise DataError(str(error)) from None

        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}


@DATASET_REGISTRY.register()
class Dataset_PairedImage(AuthorsPairedPipeline, CheckedPairedImageDataset):  # noqa: N801  (the authors' name)
    """The authors' ``Dataset_PairedImage``: BasicSR's folder / LMDB / meta-info pairing of lq and gt
    (``filename_tmpl``), reflect padding, random crop and ``geometric_augs`` in training, whole images otherwise.

    Items: ``lq``, ``gt`` float32 RGB ``(3, H, W)`` tensors in [0, 1] (``(3, gt_size, gt_size)`` in training),
    ``lq_path``, ``gt_path``.
    """

    def __init__(self, opt):
        self.read_authors_options(opt)
        super().__init__(opt)


def dehaze_image_id(path):
    """The clear image's name of a hazy image: ``part4/8961_0.95_0.08.jpg`` -> ``8961`` (the text before the
    first underscore of the file name; SOTS / RESIDE name hazy images ``<id>_<A>_<beta>``)."""
    return osp.splitext(osp.basename(path))[0].split('_')[0]


def dehaze_pairs(lq_folder, gt_folder, meta_info_file=None):
    """``[{'lq_path', 'gt_path'}]`` pairing every hazy image with the clear image of its id.

    The hazy images are those listed in ``meta_info_file`` (one path relative to ``lq_folder`` a line, e.g. the
    authors' ``hazy_outside.txt``) or, without one, every image under ``lq_folder`` (sub-folders included). The
    clear image of ``<id>_<A>_<beta>.<ext>`` is the one image named ``<id>.<any ext>`` directly in ``gt_folder``.
    """
    for side, folder in (('lq', lq_folder), ('gt', gt_folder)):
        if not folder or not osp.isdir(folder):
            raise DataError(f"dataroot_{side} '{folder}' does not exist (or is not a folder)")
    if meta_info_file:
        try:
            with open(meta_info_file, encoding='utf-8') as file:
                hazy = [line.strip().split(' ')[0] for line in file if line.strip()]
        except OSError as error:
            raise DataError(f"cannot read meta_info_file '{meta_info_file}': {error.strerror}") from None
    else:
        hazy = sorted(name for name in scandir(lq_folder, suffix=SCANDIR_SUFFIXES, recursive=True))
    clear = {}
    for name in scandir(gt_folder, suffix=SCANDIR_SUFFIXES, recursive=False):
        clear.setdefault(osp.splitext(name)[0], []).append(name)
    pairs = []
    for name in hazy:
        image_id = dehaze_image_id(name)
        matches = clear.get(image_id, [])
        if len(matches) != 1:
            found = 'none' if not matches else ', '.join(sorted(matches))
            raise DataError(f"hazy image '{osp.join(lq_folder, name)}' needs exactly one clear image named "
                                  f"'{image_id}.<ext>' in dataroot_gt '{gt_folder}' (found: {found})")
        pairs.append({'lq_path': osp.join(lq_folder, name), 'gt_path': osp.join(gt_folder, matches[0])})
    if not pairs:
        raise DataError(f"no hazy images in dataroot_lq '{lq_folder}'")
    return pairs


# The authors' own layout, one root: (list file, folder its lines are relative to, clear-image folder, extension)
AUTHORS_DEHAZE_LISTS = {'train': ('hazy_outside.txt', 'Dehaze', osp.join('Dehaze', 'original'), '.jpg'),
                        'test': ('haze_test.txt', osp.join('outdoor', 'hazy'), osp.join('outdoor', 'gt'), '.png')}


def authors_dehaze_list(phase):
    """The authors' ``(list file, hazy folder, clear folder, extension)`` for ``phase`` (``train``, else test)."""
    return AUTHORS_DEHAZE_LISTS['train' if phase == 'train' else 'test']


def authors_dehaze_pairs(root, phase):
    """``[{'lq_path', 'gt_path'}]`` read from the authors' list file under ``root``, as their dataset reads it:

    * training: ``root/hazy_outside.txt``; a line ``synthetic/part4/8961_0.95_0.08.jpg`` pairs
      ``root/Dehaze/<line>`` with ``root/Dehaze/original/8961.jpg`` (the id: the file name before its first ``_``);
    * validation and testing: ``root/haze_test.txt``; a line ``1917_0.95_0.2.jpg`` pairs
      ``root/outdoor/hazy/<line>`` with ``root/outdoor/gt/1917.png`` (the id: the line before its first ``_``).

    Blank lines are skipped. A missing image is named when it is read.
    """
    list_name, hazy_folder, clear_folder, extension = authors_dehaze_list(phase)
    list_file = osp.join(root, list_name)
    try:
        with open(list_file, encoding='utf-8') as file:
            lines = [line.strip() for line in file if line.strip()]
    except OSError as error:
        raise DataError(f"cannot read the authors' dehazing list '{list_file}': {error.strerror} (dataroot_lq and "
                        "dataroot_gt name one folder, the authors' layout, which holds that list; give two folders "
                        'for hazy and clear images otherwise)') from None
    if not lines:
        raise DataError(f"the authors' dehazing list '{list_file}' names no hazy image")
    pairs = []
    for line in lines:
        image_id = (line.split('/')[-1] if phase == 'train' else line).split('_')[0]
        pairs.append({'lq_path': osp.join(root, hazy_folder, line),
                      'gt_path': osp.join(root, clear_folder, image_id + extension)})
    return pairs


def is_one_root(lq_folder, gt_folder):
    """Whether ``dataroot_lq`` and ``dataroot_gt`` name one folder (the authors' dehazing layout)."""
    return bool(lq_folder) and bool(gt_folder) and osp.normpath(lq_folder) == osp.normpath(gt_folder)


@DATASET_REGISTRY.register()
class Dataset_PairedImage_dehazeSOT(AuthorsPairedPipeline, CheckedPairedImageDataset):  # noqa: N801
    """The authors' dehazing dataset (RESIDE outdoor training set, SOTS-outdoor test set), without their
    hard-coded absolute path. Two layouts:

    * the authors' own: ``dataroot_lq`` and ``dataroot_gt`` are one root holding their list files
      (``hazy_outside.txt`` for training, ``haze_test.txt`` otherwise), read as their code reads them, relative
      to that root (:func:`authors_dehaze_pairs`);
    * folders: ``dataroot_lq`` holds the hazy images ``<id>_<A>_<beta>.<ext>`` (in sub-folders or not, or listed
      by ``meta_info_file``), ``dataroot_gt`` the clear ones ``<id>.<ext>``; see :func:`dehaze_pairs`.

    Training as :class:`Dataset_PairedImage`; validation on the central ``gt_size`` crop; testing on whole
    images. Disk only (``io_backend: {type: disk}``). Items as :class:`Dataset_PairedImage`.
    """

    crop_in_validation = True

    def __init__(self, opt):  # noqa: D107  (the pairing replaces CheckedPairedImageDataset's)
        self.read_authors_options(opt)
        self.opt = opt
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})  # the schema allows disk only
        self.is_lmdb = False
        self.file_client = None
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.lq_folder, self.gt_folder = opt.get('dataroot_lq'), opt.get('dataroot_gt')
        if is_one_root(self.lq_folder, self.gt_folder) and not opt.get('meta_info_file'):
            self.paths = authors_dehaze_pairs(self.lq_folder, self.phase)
        else:
            self.paths = dehaze_pairs(self.lq_folder, self.gt_folder, opt.get('meta_info_file'))

    def __len__(self):
        return len(self.paths)

