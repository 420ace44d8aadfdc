"""Restore images and folders with HINT (or any BasicSR network): the library behind ``tools/inference.py``.

From Python::

    import hint_plugin.inference as inference
    net = inference.load_network({'type': 'HINT'}, 'HINT_denoise.pth', device='cpu')
    summary = inference.restore_files(['photos/'], 'restored/', net, tile=512)
    print(summary)  # restored 12 of 12 images

Inputs are files, folders (their image files, not recursive) and glob patterns. Every image comes out in the
form it came in (:mod:`hint_plugin.utils.image_io`): same size, bit depth, channel count, alpha and format;
8/16-bit PNG, JPEG, TIFF, BMP, WebP, PNM. Only pixels are carried over, not metadata (EXIF, ICC profiles). An
image is restored in one pass, or in overlapping blended tiles (:func:`hint_plugin.utils.tiling.restore`) when
asked, or when the device runs out of memory: then the tile size is halved (from half the image) until it fits
or reaches ``min_tile``. Outputs never replace an input, and
replace an existing file only with ``overwrite``. A file that fails is reported and skipped.

Setup problems raise the errors of :mod:`hint_plugin.errors`: :class:`~hint_plugin.errors.OptionsError` (options,
network, device), :class:`~hint_plugin.errors.CheckpointError`, :class:`~hint_plugin.errors.ImageError` (no inputs,
no output folder); the command line turns them into one line and exit status 2.
"""
import glob
import logging
import math
import os
import re
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

import hint_plugin  # noqa: F401  (registers HINT into BasicSR's registries)
from basicsr.archs import build_network
from hint_plugin.archs.padding import PAD_MULTIPLE
from hint_plugin.errors import ImageError, NonFiniteError, OptionsError, StateDictError
from hint_plugin.utils.checkpoint import load_weights, read_state_dict
from hint_plugin.utils.detection import hint_network_options
from hint_plugin.utils.image_io import (DEFAULT_JPEG_QUALITY, from_rgb_float, is_image_file, read_image, to_rgb_float,
                                        write_image)
from hint_plugin.utils.option_schema import check_network_file
from hint_plugin.utils.options import read_options
from hint_plugin.utils.safetensors_io import is_safetensors, read_network_config
from hint_plugin.utils.tiling import TILE_MERGES, restore
from hint_plugin.utils.validation import check_finite_output

DEFAULT_OVERLAP = 32
DEFAULT_MIN_TILE = 64
DEFAULT_WINDOW_SIZE = PAD_MULTIPLE

logger = logging.getLogger(__name__)

_OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate|cannot allocate|not enough memory|failed to allocate",
                            re.IGNORECASE)


def _first_line(error):
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------------------------- set-up
@dataclass
class Setup:
    """What to build and load, and how to tile, resolved from ``--opt`` / ``--weights`` / ``--config``."""
    network_opt: dict
    weights: str | None
    param_key: str = 'params_ema'
    strict: bool = True
    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    window_size: int = DEFAULT_WINDOW_SIZE
    merge: str = 'cosine'
    exact_key: bool = False  # the param_key was named explicitly: it must exist, no fallback


def resolve_setup(opt=None, weights=None, config=None, param_key=None, tile=None, overlap=None, merge=None):
    """The :class:`Setup` for the command line's choices (None: not given).

    * ``opt`` (a BasicSR test YAML): network from ``network_g``, checkpoint from ``path.pretrain_network_g``
      (``weights`` overrides it), key from ``path.param_key_g`` (default ``params``), strictness from
      ``path.strict_load_g``, tiling from ``val.tile`` (``size``, ``overlap``, ``merge``), padding from
      ``val.window_size``.
    * ``weights`` with ``config`` (any option file): network from the config's ``network_g``.
    * ``weights`` alone: the ``network_g`` a ``.safetensors`` file stores, else HINT with the configuration
      detected from the weights (:func:`weights_network_options`).

    ``param_key`` overrides the key, which must then exist in the checkpoint (``exact_key``); without it, the
    key defaults to ``path.param_key_g`` of ``opt``, else ``params_ema``, and the loader falls back to
    ``params`` and to a bare state_dict. ``tile`` 0 turns tiling off; ``tile``, ``overlap`` and ``merge``
    (``cosine`` ramps, the default, or the authors' plain ``average``) override the option file's. A tile
    smaller than :func:`smallest_tile` of the overlap is refused (it could not keep the overlap).
    """
    if opt is not None and config is not None:
        raise OptionsError('give either --opt or --config, not both (--opt carries its own network_g)')
    if opt is None and weights is None:
        raise OptionsError('give --opt TEST_YAML, or --weights CKPT (with --config NETWORK_YAML for a network '
                             'other than the default HINT)')
    if opt is not None:
        options = read_options(opt)
        check_network_file(options, opt)  # the keys read here, once; tile, overlap and merge: by argparse
        paths, val = options.get('path') or {}, options.get('val') or {}
        tiling = val.get('tile') or {}
        weights = weights or paths.get('pretrain_network_g')
        if not weights:
            raise OptionsError(f'{opt} has no path.pretrain_network_g: pass --weights CKPT')
        setup = Setup(dict(options['network_g']), str(weights), param_key or paths.get('param_key_g') or 'params',
                      paths.get('strict_load_g', True), tiling.get('size') or None,
                      tiling.get('overlap', DEFAULT_OVERLAP), val.get('window_size', DEFAULT_WINDOW_SIZE),
                      tiling.get('merge', 'cosine'))
    elif config is not None:
        options = read_options(config)
        check_network_file(options, config, sections={})
        setup = Setup(dict(options['network_g']), weights, param_key or 'params_ema')
    else:
        setup = Setup(weights_network_options(weights, param_key or 'params_ema', param_key is not None), weights,
                      param_key or 'params_ema')
    setup.exact_key = param_key is not None
    if tile is not None:
        setup.tile = tile or None
    if overlap is not None:
        setup.overlap = overlap
    if merge is not None:
        setup.merge = merge
    if setup.tile is not None and setup.tile < smallest_tile(setup.overlap, setup.window_size):
        raise OptionsError(f'tile {setup.tile} is too small for an overlap of {setup.overlap}: tiles must be at '
                           f'least {smallest_tile(setup.overlap, setup.window_size)} (the overlap rounded up to a '
                           f'multiple of {setup.window_size}, plus {setup.window_size}); give a larger tile, a '
                           'smaller overlap, or tile 0 for whole images')
    return setup


def smallest_tile(overlap, window_size=DEFAULT_WINDOW_SIZE):
    """The smallest tile size that keeps ``overlap``: the overlap rounded up to a multiple of ``window_size``,
    plus ``window_size`` (tiles are cut at multiples of ``window_size``, and each must reach past the overlap)."""
    return -(-overlap // window_size) * window_size + window_size


def weights_network_options(weights, param_key='params_ema', exact_key=False):
    """The ``network_g`` of a checkpoint given without options: stored in a ``.safetensors`` file's metadata, or
    detected from HINT weights; an :class:`OptionsError` asking for ``--config`` when neither tells it."""
    if is_safetensors(weights):
        stored = read_network_config(weights)
        if stored is not None:
            return stored
    try:
        return hint_network_options(read_state_dict(weights, param_key, exact_key))
    except StateDictError as error:
        raise OptionsError(f'{weights}: the network cannot be told from these weights ({error}); '
                           'give --config NETWORK_YAML (an option file with its network_g)') from None


def resolve_device(name='auto'):
    """``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda'`` or ``'cuda:N'`` as a ``torch.device``."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise OptionsError(f'unknown device {name!r} (auto, cpu, cuda or cuda:N)') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise OptionsError('CUDA is not available on this machine (use --device cpu or auto)')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionsError(f'{name}: only {torch.cuda.device_count()} CUDA device(s) here')
    elif device.type != 'cpu':
        raise OptionsError(f'unsupported device {name!r} (auto, cpu, cuda or cuda:N)')
    return device


def load_network(network_opt=None, weights=None, param_key='params_ema', strict=True, device='cpu', exact_key=False):
    """Build ``network_opt`` (BasicSR's ``network_g``; default ``{'type': 'HINT'}``) and load ``weights``.

    The checkpoint goes through :func:`~hint_plugin.utils.checkpoint.load_weights` (``weights_only=True``;
    ``params`` / ``params_ema`` / bare state_dict; a checkpoint of another architecture raises one
    ``CheckpointError`` naming missing and unexpected keys). Without ``weights`` the network keeps its random
    initialisation. ``exact_key``: ``param_key`` must exist (no fallback). Returns the network in eval mode,
    without gradients, on ``device``.
    """
    network_opt = dict(network_opt or {'type': 'HINT'})
    try:
        net = build_network(network_opt)
    except KeyError as error:  # the registry's "No object named ... found"
        raise OptionsError(f'cannot build network_g: {error.args[0] if error.args else error}') from None
    except (TypeError, ValueError) as error:
        raise OptionsError(f'cannot build network_g of type {network_opt.get("type")}: '
                             f'{_first_line(error)}') from None
    if weights is not None:
        mismatch = load_weights(net, weights, param_key, strict, exact_key)
        if mismatch:  # only when not strict (path.strict_load_g: false)
            logger.warning(f'{weights} loaded without strict checking: {mismatch}')
    net.eval().requires_grad_(False)
    return net.to(device)


# --------------------------------------------------------------------------------------------- restoring
def is_out_of_memory(error):
    """Whether ``error`` is the device running out of memory (CUDA's error, or a CPU allocation failure)."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and bool(_OUT_OF_MEMORY.search(str(error)))


def smaller_tile(tile, height, width, window_size=DEFAULT_WINDOW_SIZE, min_tile=DEFAULT_MIN_TILE):
    """The tile size to try after running out of memory with ``tile`` (None: untiled); None if none is left.

    Half of ``tile`` (or of the padded image's longer side), a multiple of ``window_size``, at least
    ``min_tile`` (rounded up to a multiple of ``window_size``), and smaller than the size that failed.
    """
    padded = max(-(-height // window_size), -(-width // window_size)) * window_size
    failed = padded if tile is None else min(tile // window_size * window_size, padded)
    floor = max(window_size, -(-min_tile // window_size) * window_size)
    candidate = max(floor, failed // 2 // window_size * window_size)
    return candidate if candidate < failed else None


# ------------------------------------------------------------------------------------- whole image or tiles
# The memory one forward pass of HINT holds at its peak grows with the padded pixel count and the network's width
# ``dim``: this many bytes per pixel and per channel of ``dim`` (float32 features; bf16 under autocast holds no
# more). Measured as the slope of the process's peak memory against megapixels by ``studies/scaling.py``
# (docs/benchmarks.md, "Cost as images grow"), rounded up.
FORWARD_BYTES_PER_PIXEL_PER_DIM = 300
# What restoring holds outside the network, per pixel of the whole image: its float copy, the blended output and
# the blend weights (float32), and the decoded and written arrays.
IMAGE_BYTES_PER_PIXEL = 48


def _memory_model(net):
    """``(weight bytes, bytes per padded pixel)`` of ``net``'s forward pass; None for a network without a ``dim``
    (another BasicSR network: no estimate)."""
    net = getattr(net, 'net', net)  # through hint_plugin.precision.WithPrecision
    dim = getattr(net, 'dim', None)
    if not isinstance(dim, int):
        return None
    weights = sum(parameter.numel() * parameter.element_size() for parameter in net.parameters())
    return weights, FORWARD_BYTES_PER_PIXEL_PER_DIM * dim


def forward_memory(net, height, width, window_size=DEFAULT_WINDOW_SIZE):
    """Estimated peak bytes of one forward pass of ``net`` on a ``height x width`` image (padded to a multiple of
    ``window_size``): the weights plus :data:`FORWARD_BYTES_PER_PIXEL_PER_DIM` x ``dim`` x padded pixels.
    None for a network without a ``dim`` (another BasicSR network: no estimate)."""
    model = _memory_model(net)
    if model is None:
        return None
    weights, per_pixel = model
    return weights + per_pixel * (-(-height // window_size) * window_size) * (-(-width // window_size) * window_size)


def available_memory(device='cpu'):
    """Bytes a restoration may use on ``device``: free CUDA memory, or the CPU's ``MemAvailable`` (Linux; else
    half the physical memory), each less a tenth kept for everything else."""
    device = torch.device(device)
    if device.type == 'cuda':
        return int(0.9 * torch.cuda.mem_get_info(device)[0])
    try:
        with open('/proc/meminfo', encoding='ascii') as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith('MemAvailable:'))
    except (OSError, StopIteration, ValueError):
        available = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2
    return int(0.9 * available)


def plan_tile(net, height, width, max_memory, window_size=DEFAULT_WINDOW_SIZE, min_tile=DEFAULT_MIN_TILE):
    """``(tile, needed)``: whether a ``height x width`` image fits ``max_memory`` bytes whole, else the tile.

    ``needed`` is :func:`forward_memory` of the whole image plus :data:`IMAGE_BYTES_PER_PIXEL` per pixel. When it
    fits, ``tile`` is None (one pass). Otherwise ``tile`` is the largest multiple of ``window_size`` (at least
    ``min_tile``) whose square tile's forward fits what the whole image's own arrays leave; ``min_tile`` when
    none does (the out-of-memory retries still halve from there). ``(None, None)`` when the network gives no
    estimate.
    """
    model = _memory_model(net)
    if model is None:
        return None, None
    weights, per_pixel = model
    outside = IMAGE_BYTES_PER_PIXEL * height * width
    needed = forward_memory(net, height, width, window_size) + outside
    if needed <= max_memory:
        return None, needed
    floor = max(window_size, -(-min_tile // window_size) * window_size)
    side = math.isqrt(max(0, max_memory - outside - weights) // per_pixel)  # the largest square that fits
    largest = max(height, width) // window_size * window_size
    return max(floor, min(largest, side // window_size * window_size)), needed


def _restore_once(net, image, device, tile, overlap, window_size, merge='cosine', progress=False):
    with torch.inference_mode():
        if tile is None:
            return restore(net, image.to(device), window_size).cpu()
        bar = tqdm(desc='tiles', unit='tile', leave=False, disable=not progress, dynamic_ncols=True)

        def forward(patch):  # the image and the blended output stay on the CPU; one tile at a time on the device
            restored = net(patch.to(device)).to(image.device)
            bar.update()
            return restored

        if merge == 'average' and overlap >= tile:  # after out-of-memory halving: the overlap becomes half a tile
            overlap = tile // 2
        try:
            return restore(forward, image, window_size, tile, overlap, merge)
        finally:
            bar.close()


def restore_tensor(net, image, device='cpu', tile=None, overlap=DEFAULT_OVERLAP, window_size=DEFAULT_WINDOW_SIZE,
                   min_tile=DEFAULT_MIN_TILE, log=None, name='image', merge='cosine', progress=False):
    """Restore a ``(1, C, H, W)`` CPU tensor with ``net`` on ``device``; returns the CPU output.

    Untiled when ``tile`` is None, else in tiles merged by ``merge`` (``cosine`` ramps, or the authors' plain
    ``average`` on their grid; the image and the output stay in CPU memory, only tiles visit the device). When
    the device runs out of memory the image is tried again in smaller tiles (:func:`smaller_tile`), each retry
    reported through ``log``; below ``min_tile`` the error is re-raised as a ``RuntimeError`` saying so.
    ``progress`` shows a tqdm bar over the tiles.
    """
    device = torch.device(device)
    log = log or logger.warning
    while True:
        try:
            return _restore_once(net, image, device, tile, overlap, window_size, merge, progress)
        except (RuntimeError, MemoryError) as error:
            if not is_out_of_memory(error):
                raise
            reason = _first_line(error)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
        where = 'untiled' if tile is None else f'in tiles of {tile}'
        next_tile = smaller_tile(tile, *image.shape[-2:], window_size, min_tile)
        if next_tile is None:
            raise RuntimeError(f'out of memory {where}, and no smaller tile is allowed (--min-tile {min_tile}): '
                               f'{reason}')
        log(f'{name}: out of memory on {device} {where}; retrying in tiles of {next_tile} ({reason})')
        tile = next_tile


def restore_array(net, image, device='cpu', tile=None, overlap=DEFAULT_OVERLAP, window_size=DEFAULT_WINDOW_SIZE,
                  min_tile=DEFAULT_MIN_TILE, log=None, name='image', merge='cosine', progress=False):
    """Restore an image array as OpenCV reads it; returns the same shape, dtype and alpha (see ``image_io``).

    The colour (RGB, grayscale replicated) goes through :func:`restore_tensor`; grayscale comes back as the
    mean of the restored channels, the alpha channel unchanged. An output holding a NaN or an infinity raises
    :class:`~hint_plugin.errors.NonFiniteError` naming ``name`` and the count.
    """
    rgb, alpha = to_rgb_float(image)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
    output = restore_tensor(net, tensor, device, tile, overlap, window_size, min_tile, log, name, merge, progress)
    check_finite_output(output, name)
    if output.shape[1] != 3 or output.shape[-2:] != tensor.shape[-2:]:
        raise ValueError(f'the network turned a {tuple(tensor.shape)} image into {tuple(output.shape)}; '
                         'this tool restores RGB images at their own size')
    restored = output[0].float().clamp(0, 1).permute(1, 2, 0).numpy()
    return from_rgb_float(restored, image, alpha)


# --------------------------------------------------------------------------------------------- files
@dataclass
class Summary:
    """What :func:`restore_files` did: ``restored`` (input, output) pairs and ``failed`` (input, reason) pairs."""
    restored: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    @property
    def total(self):
        return len(self.restored) + len(self.failed)

    @property
    def ok(self):
        return not self.failed

    def __str__(self):
        line = f'restored {len(self.restored)} of {self.total} images'
        if self.failed:
            line += f', {len(self.failed)} failed: ' + ', '.join(f'{name} ({why})' for name, why in self.failed)
        return line


def collect_inputs(inputs):
    """``(files, problems)`` for a list of files, folders and glob patterns.

    A folder gives its image files (by extension, sorted, not recursive), a pattern its matching image files
    (``**`` recursive); a file named explicitly is kept whatever its extension. ``problems`` lists
    ``(input, reason)`` for inputs that give nothing. Files found twice are kept once.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files, problems, seen = [], [], set()
    for entry in map(os.fspath, inputs):
        if os.path.isdir(entry):
            found = sorted(os.path.join(entry, name) for name in os.listdir(entry)
                           if is_image_file(name) and os.path.isfile(os.path.join(entry, name)))
            missing = 'no image files in this folder'
        elif os.path.lexists(entry):
            found, missing = [entry], None
        elif any(character in entry for character in '*?['):
            found = sorted(path for path in glob.glob(entry, recursive=True)
                           if is_image_file(path) and os.path.isfile(path))
            missing = 'no image file matches this pattern'
        else:
            found, missing = [], 'no such file or folder'
        if not found:
            problems.append((entry, missing))
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files, problems


def output_path(path, output_dir, suffix=''):
    """``output_dir/<stem><suffix><ext>`` for the input ``path`` (the extension, hence the format, kept)."""
    stem, extension = os.path.splitext(os.path.basename(path))
    return os.path.join(output_dir, f'{stem}{suffix}{extension}')


def _file_id(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def restore_files(inputs, output_dir, net, device='cpu', tile=None, overlap=DEFAULT_OVERLAP,
                  window_size=DEFAULT_WINDOW_SIZE, min_tile=DEFAULT_MIN_TILE, suffix='', overwrite=False,
                  jpeg_quality=DEFAULT_JPEG_QUALITY, progress=False, log=None, merge='cosine', max_pixels=None,
                  max_memory=None):
    """Restore every image of ``inputs`` (files, folders, globs) into ``output_dir``; returns a :class:`Summary`.

    Each image is written as ``output_dir/<stem><suffix><ext>`` in its own form (see :func:`restore_array`).
    An image fails, is reported through ``log`` and skipped when it cannot be read or written, when its output
    would be one of the inputs (never replaced, even with ``overwrite``), when its output exists and not
    ``overwrite``, when another input of this run already wrote that output, when its header declares more
    than ``max_pixels`` pixels (checked before decoding), or when restoring it raises.
    Inputs that match nothing count as failures too. ``progress`` shows tqdm bars (images, tiles) on stderr.
    Without ``tile``, ``max_memory`` (bytes) picks whole image or tiles for each image (:func:`plan_tile`); a
    tiled image is reported through ``log`` with the estimate.

    Raises :class:`~hint_plugin.errors.ImageError` when ``inputs`` hold no image at all or ``output_dir`` cannot be
    created, and :class:`~hint_plugin.errors.NonFiniteError` (stopping the run, the image not written) when the
    network's output holds a NaN or an infinity.
    """
    log = log or logger.warning
    files, problems = collect_inputs(inputs)
    summary = Summary(failed=list(problems))
    for name, reason in problems:
        log(f'skipped {name}: {reason}')
    if not files:
        raise ImageError(', '.join(name for name, _ in problems), 'no input images found')
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise ImageError(output_dir, f'cannot create the output folder: {error.strerror or error}') from None
    input_ids = {_file_id(path): path for path in files} | {os.path.realpath(path): path for path in files}
    input_ids.pop(None, None)
    written = {}
    bar = tqdm(files, desc='restoring', unit='image', disable=not progress, dynamic_ncols=True)
    for path in bar:
        target = output_path(path, output_dir, suffix)
        target_key = os.path.realpath(target)
        clash = input_ids.get(_file_id(target)) or input_ids.get(target_key)
        if clash is not None:
            reason = ('the output would overwrite the input itself' if clash == path
                      else f'the output would overwrite the input {clash}')
        elif target_key in written:
            reason = f'its output {target} was already written for {written[target_key]}'
        elif os.path.lexists(target) and not overwrite:
            reason = f'output {target} exists (use --overwrite to replace it)'
        else:
            reason = None
            try:
                image = read_image(path, max_pixels)
                image_tile = tile
                if tile is None and max_memory is not None:
                    image_tile, needed = plan_tile(net, *image.shape[:2], max_memory, window_size,
                                                   max(min_tile, smallest_tile(overlap, window_size)))
                    if image_tile is not None:
                        log(f'{path}: {image.shape[1]}x{image.shape[0]} needs about {needed / 1e9:.1f} GB whole, '
                            f'more than --max-memory {max_memory / 1e9:.1f} GB: tiles of {image_tile}')
                restored = restore_array(net, image, device, image_tile, overlap, window_size, min_tile, log, path,
                                         merge, progress)
                write_image(target, restored, overwrite=overwrite, jpeg_quality=jpeg_quality)
            except ImageError as error:
                reason = error.reason
            except NonFiniteError:  # the weights overflow: every other image would fail alike
                raise
            except Exception as error:  # one bad image must not end the run; the reason is reported
                reason = f'{type(error).__name__}: {_first_line(error)}'
        if reason is None:
            written[target_key] = path
            summary.restored.append((path, target))
        else:
            summary.failed.append((path, reason))
            log(f'skipped {path}: {reason}')
    bar.close()
    return summary
