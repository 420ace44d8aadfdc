"""Turn restoration datasets, as their authors ship them, into BasicSR LMDBs.

A :class:`Layout` says where a dataset keeps its degraded (lq) and clean (gt) images and how their file
names pair up: a regular expression per side, full-matching the file stem, whose named group ``id`` is
the same for the two images of a pair. :func:`create_lmdbs` pairs the files, checks every image, and
writes ``lq.lmdb`` and ``gt.lmdb`` with identical keys (what BasicSR's ``PairedImageDataset`` needs) through
BasicSR's ``make_lmdb_from_imgs``, which also writes each LMDB's ``meta_info.txt``.

Keys are the lq file stem (or the pair id, for layouts whose lq names only add a prefix). BasicSR reads the
keys back from ``meta_info.txt`` up to the first ``'.'``, so a dot in a key becomes ``'p'``
(SOTS ``0001_0.8_0.2.jpg`` gets the key ``0001_0p8_0p2``), and keys must be ASCII.
"""
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field, replace
from os import path as osp
from typing import Dict, List, Optional, Tuple

import cv2
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from tqdm import tqdm

from hint_plugin.errors import DataError
from hint_plugin.utils.image_io import IMAGE_EXTENSIONS
from hint_plugin.utils.messages import listing

KEY_SOURCES = ('stem', 'id')

# LMDB map size: the decoded size of every image plus one page each (values are stored in whole
# overflow pages), times a margin for PNG's worst case on noise-like images and copy-on-write pages.
LMDB_PAGE = 4096
MAP_SIZE_SAFETY = 2.0
MAP_SIZE_MIN = 1 << 20


@dataclass(frozen=True)
class Side:
    """One side (lq or gt) of a layout.

    Attributes:
        dirs (tuple[str] | None): candidate folders relative to the dataset root (absolute paths work too);
            the first that exists is used. None: must be given (``--lq-dir`` / ``--gt-dir``).
        pattern (str | None): regular expression full-matching a file stem, with a named group ``id``.
            Images whose stem it does not match are skipped (and reported). None: must be given.
    """
    dirs: Optional[Tuple[str, ...]] = None
    pattern: Optional[str] = None


SAME_NAME = r'(?P<id>.+)'


@dataclass(frozen=True)
class Layout:
    """Where a dataset keeps its images and how lq and gt files pair up.

    Attributes:
        gt (Side): the clean images.
        lq (Side | None): the degraded images; None for a single LMDB of clean images.
        key (str): 'stem' (the lq file stem, the gt one without lq) or 'id' (the pairing id).
        help (str): one line for the command-line help.
    """
    gt: Side
    lq: Optional[Side] = None
    key: str = 'stem'
    help: str = field(default='', compare=False)


LAYOUTS: Dict[str, Layout] = {
    'lolv2-real': Layout(
        lq=Side(('Low', ), r'low(?P<id>\d+)'), gt=Side(('Normal', ), r'normal(?P<id>\d+)'), key='id',
        help='Low/low00001.png <-> Normal/normal00001.png, key 00001'),
    'lolv2-synthetic': Layout(
        lq=Side(('Low', ), SAME_NAME), gt=Side(('Normal', ), SAME_NAME), help='Low/X.png <-> Normal/X.png'),
    'sots': Layout(
        lq=Side(('hazy', ), r'(?P<id>[^_]+)(?:_.*)?'), gt=Side(('gt', ), SAME_NAME),
        help='hazy/0001_0.8_0.2.jpg, hazy/1400_1.png <-> gt/0001.png, gt/1400.png (several hazy per gt), '
        'key 0001_0p8_0p2, 1400_1'),
    'snow100k': Layout(
        lq=Side(('synthetic', ), SAME_NAME), gt=Side(('gt', ), SAME_NAME), help='synthetic/X.jpg <-> gt/X.jpg'),
    'rain100': Layout(
        lq=Side(('rain', '.'), r'rain-(?P<id>\d+)'), gt=Side(('norain', '.'), r'norain-(?P<id>\d+)'), key='id',
        help='rain-001.png <-> norain-001.png, side by side or in rain/ and norain/, key 001'),
    'regex': Layout(
        lq=Side(), gt=Side(),
        help='--lq-dir/--lq-pattern <-> --gt-dir/--gt-pattern, patterns with a group (?P<id>...)'),
    'single': Layout(gt=Side(('.', ), SAME_NAME), help='one folder of clean images -> gt.lmdb only (see --name)'),
}


@dataclass(frozen=True)
class Pair:
    """One LMDB entry: its key, the lq image (None without lq) and the gt image."""
    key: str
    lq: Optional[str]
    gt: str


@dataclass
class LmdbSummary:
    """What :func:`create_lmdbs` wrote."""
    num_images: int
    lmdb_paths: Dict[str, str]
    skipped: List[str]

    def __str__(self):
        what = 'pairs' if 'lq' in self.lmdb_paths else 'images'
        text = f'{self.num_images} {what} -> ' + ', '.join(self.lmdb_paths.values())
        if self.skipped:
            text += f'; skipped {listing(self.skipped, "file")} whose names fit no pattern of the layout'
        return text


def configure_layout(name, lq_dir=None, gt_dir=None, lq_pattern=None, gt_pattern=None, key=None):
    """Return the layout ``name`` of :data:`LAYOUTS` with the given folders, patterns or key source instead.

    Raises:
        DataError: unknown layout, lq options for the single layout, a missing required option,
            a pattern that does not compile or lacks the group ``id``, or an unknown key source.
    """
    if name not in LAYOUTS:
        raise DataError(f'unknown layout {name!r}; choose from {", ".join(LAYOUTS)}')
    layout = LAYOUTS[name]
    if layout.lq is None and (lq_dir is not None or lq_pattern is not None):
        raise DataError(f'layout {name!r} has no lq images: drop --lq-dir / --lq-pattern')
    sides = {} if layout.lq is None else {'lq': _override(layout.lq, lq_dir, lq_pattern)}
    sides['gt'] = _override(layout.gt, gt_dir, gt_pattern)
    missing = [f'--{side_name}-{option}' for side_name, side in sides.items()
               for option, value in (('dir', side.dirs), ('pattern', side.pattern)) if value is None]
    if missing:
        raise DataError(f'layout {name!r} needs {", ".join(missing)}')
    for side in sides.values():
        _compile(side.pattern)
    key = layout.key if key is None else key
    if key not in KEY_SOURCES:
        raise DataError(f'unknown key source {key!r}; choose from {", ".join(KEY_SOURCES)}')
    return replace(layout, key=key, **sides)


def find_pairs(root, layout):
    """Pair the lq and gt images of the dataset at ``root`` as ``layout`` (from :func:`configure_layout`) says.

    Every lq image needs its gt image and every gt image at least one lq image (several lq images may
    share one gt image: each gets an entry with that gt image).

    Returns:
        tuple[list[Pair], list[str]]: the entries sorted by key, and the images skipped because their name
        fits no pattern of the layout.

    Raises:
        DataError: a missing folder, no images, unpaired images, two gt images with one id, two
            entries with one key, or a key that is not ASCII.
    """
    gt_dir = _find_dir(root, layout.gt, 'gt')
    gt_by_id, gt_unmatched = _scan(gt_dir, layout.gt.pattern)
    ambiguous = [paths for paths in gt_by_id.values() if len(paths) > 1]
    if ambiguous:
        raise DataError(f'gt ids shared by several images: {len(ambiguous)}, '
                                 f'e.g. {", ".join(ambiguous[0])}')
    gt_of = {image_id: paths[0] for image_id, paths in gt_by_id.items()}

    if layout.lq is None:
        entries = [(image_id, None, gt_path) for image_id, gt_path in gt_of.items()]
        skipped = gt_unmatched
    else:
        lq_dir = _find_dir(root, layout.lq, 'lq')
        lq_by_id, lq_unmatched = _scan(lq_dir, layout.lq.pattern)
        lq_alone = [path for image_id, paths in lq_by_id.items() if image_id not in gt_of for path in paths]
        gt_alone = [path for image_id, path in gt_of.items() if image_id not in lq_by_id]
        if lq_alone or gt_alone:
            raise DataError(
                'unpaired images: ' + '; '.join(f'{what} {listing(paths, "file")}' for what, paths in (
                    ('lq without gt:', lq_alone), ('gt without lq:', gt_alone)) if paths))
        entries = [(image_id, lq_path, gt_of[image_id]) for image_id, paths in lq_by_id.items() for lq_path in paths]
        if osp.realpath(lq_dir) == osp.realpath(gt_dir):  # one folder: the other side's files are not skipped
            skipped = sorted(set(lq_unmatched) & set(gt_unmatched))
        else:
            skipped = lq_unmatched + gt_unmatched
    if not entries:
        raise DataError(f'no images to pair under {root}')

    pairs = [Pair(_lmdb_key(image_id if layout.key == 'id' else _stem(lq or gt)), lq, gt)
             for image_id, lq, gt in entries]
    by_key = defaultdict(list)
    for pair in pairs:
        by_key[pair.key].append(pair.lq or pair.gt)
    clashes = [paths for paths in by_key.values() if len(paths) > 1]
    if clashes:
        raise DataError(f'LMDB keys shared by several images: {len(clashes)}, '
                                 f'e.g. {", ".join(clashes[0])}')
    return sorted(pairs, key=lambda pair: pair.key), skipped


def check_images(pairs):
    """Read every image once (with a progress bar) and return the decoded sizes in bytes, per LMDB.

    Returns:
        dict[str, list[int]]: for 'gt' (and 'lq' where the pairs have lq images) one size per entry.

    Raises:
        DataError: an image OpenCV cannot read, or a pair whose images differ in height or width.
    """
    seen = {}  # path -> (shape, nbytes); a gt image shared by several pairs is read once

    def inspect(path):
        if path not in seen:
            try:
                img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            except cv2.error:
                img = None
            if img is None:
                raise DataError(f'cannot read image {path} (corrupted or not an image)')
            seen[path] = img.shape, img.nbytes
        return seen[path]

    sizes = defaultdict(list)
    for pair in tqdm(pairs, desc='Check images', unit='pair' if pairs[0].lq else 'image'):
        gt_shape, gt_nbytes = inspect(pair.gt)
        sizes['gt'].append(gt_nbytes)
        if pair.lq is not None:
            lq_shape, lq_nbytes = inspect(pair.lq)
            sizes['lq'].append(lq_nbytes)
            if lq_shape[:2] != gt_shape[:2]:
                raise DataError(f'sizes differ: {pair.lq} is {lq_shape[1]}x{lq_shape[0]}, '
                                         f'{pair.gt} is {gt_shape[1]}x{gt_shape[0]} (width x height)')
    return dict(sizes)


def estimate_map_size(image_nbytes):
    """An LMDB map size (bytes) that holds images whose decoded sizes are ``image_nbytes``, stored as PNG."""
    return int(MAP_SIZE_SAFETY * sum(nbytes + LMDB_PAGE for nbytes in image_nbytes)) + MAP_SIZE_MIN


def create_lmdbs(root, output, layout, overwrite=False, name=None, compress_level=1):
    """Write the dataset at ``root`` as ``output/lq.lmdb`` and ``output/gt.lmdb`` with identical keys.

    Nothing is written unless every image pairs up, reads and matches its partner's size. Layouts without
    lq images write one LMDB, ``output/{name}.lmdb`` (``gt`` by default).

    Args:
        root (str): the dataset's root folder, as its authors ship it.
        output (str): folder for the LMDBs (created if missing).
        layout (Layout): see :data:`LAYOUTS` and :func:`configure_layout`.
        overwrite (bool): remove existing LMDBs of the same names first (only once the images passed).
        name (str | None): name of the single LMDB of a layout without lq images.
        compress_level (int): PNG compression level of the stored images (BasicSR's default: 1).

    Returns:
        LmdbSummary: number of entries, LMDB paths and skipped images.

    Raises:
        DataError: see :func:`find_pairs` and :func:`check_images`; an existing LMDB without
            ``overwrite``; ``name`` for a layout with lq images.
    """
    if layout.lq is not None and name is not None:
        raise DataError('--name only applies to layouts without lq images (single)')
    targets = {'gt': osp.join(output, f'{name or "gt"}.lmdb')}
    if layout.lq is not None:
        targets = {'lq': osp.join(output, 'lq.lmdb'), **targets}
    existing = [path for path in targets.values() if osp.lexists(path)]
    if existing and not overwrite:
        raise DataError(f'{existing[0]} already exists; pass --overwrite to replace it')

    pairs, skipped = find_pairs(root, layout)
    sizes = check_images(pairs)
    for path in existing:
        _remove(path)
    os.makedirs(output, exist_ok=True)
    try:
        for side, lmdb_path in targets.items():
            images = [getattr(pair, side) for pair in pairs]
            make_lmdb_from_imgs(
                osp.dirname(images[0]), lmdb_path, [osp.basename(path) for path in images],
                [pair.key for pair in pairs],
                compress_level=compress_level,
                map_size=estimate_map_size(sizes[side]))
    except BaseException:  # no half-written LMDB left behind, not even after Ctrl-C
        for lmdb_path in targets.values():
            _remove(lmdb_path)
        raise
    return LmdbSummary(len(pairs), targets, skipped)


def _override(side, folder, pattern):
    """``side`` with the folder and pattern given (None keeps the layout's)."""
    return Side(side.dirs if folder is None else (folder, ), side.pattern if pattern is None else pattern)


def _compile(pattern):
    """The compiled ``pattern``, which must have a named group ``id``."""
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise DataError(f'bad pattern {pattern!r}: {err}') from None
    if 'id' not in compiled.groupindex:
        raise DataError(f'pattern {pattern!r} needs a named group (?P<id>...)')
    return compiled


def _find_dir(root, side, side_name):
    """The first of ``side.dirs`` that exists under ``root``."""
    candidates = [osp.normpath(osp.join(root, folder)) for folder in side.dirs]
    for folder in candidates:
        if osp.isdir(folder):
            return folder
    raise DataError(f'no {side_name} folder: {" or ".join(candidates)} not found '
                             f'(--{side_name}-dir picks another)')


def _scan(folder, pattern):
    """The images of ``folder`` grouped by the id ``pattern`` finds in their stems, and those it does not fit.

    Returns:
        tuple[dict[str, list[str]], list[str]]: paths by id (sorted), and the unmatched image paths.
    """
    compiled = _compile(pattern)
    by_id, unmatched = defaultdict(list), []
    for file_name in sorted(os.listdir(folder)):
        path = osp.join(folder, file_name)
        stem, ext = osp.splitext(file_name)
        if file_name.startswith('.') or ext.lower() not in IMAGE_EXTENSIONS or not osp.isfile(path):
            continue
        match = compiled.fullmatch(stem)
        if match:
            by_id[match['id']].append(path)
        else:
            unmatched.append(path)
    return by_id, unmatched


def _stem(path):
    return osp.splitext(osp.basename(path))[0]


def _lmdb_key(name):
    """``name`` as an LMDB key BasicSR reads back intact from ``meta_info.txt`` (see the module docstring)."""
    key = name.replace('.', 'p')
    if not key.isascii():
        raise DataError(f'LMDB keys must be ASCII (BasicSR encodes them so): {name!r}')
    return key


def _remove(path):
    """Delete an LMDB folder (or a file in its place)."""
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.remove(path)
