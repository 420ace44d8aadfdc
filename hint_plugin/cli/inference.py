"""``hint-infer -i INPUT -o OUTPUT_DIR (--opt TEST_YAML | --weights CKPT [--config NETWORK_YAML])``.

Restores image files, folders or glob patterns with HINT (in a checkout also ``python tools/inference.py``); the
work is done by :mod:`hint_plugin.inference`. Exit status: 0 all restored, 1 some images failed (listed in the
summary), 2 bad arguments, options or checkpoint.
"""
import argparse
import os
import resource
import sys
import time

# What restoring one pixel may hold at once in CPU memory: the decoded image, its float copies, the output and
# the tile blend weights (the network's feature maps are bounded by tiling when memory runs out).
BYTES_PER_PIXEL = 128
OPENCV_PIXELS = 'OPENCV_IO_MAX_IMAGE_PIXELS'


def default_max_pixels():
    """The machine's physical memory over :data:`BYTES_PER_PIXEL` (OpenCV's own default, 2**30, when unknown)."""
    try:
        return max(1, os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // BYTES_PER_PIXEL)
    except (AttributeError, OSError, ValueError):
        return 2**30


# OpenCV reads its pixel limit once, when it loads: the same default as --max-pixels unless the environment sets it
# (where ``import hint_plugin`` has loaded OpenCV already, through BasicSR, OpenCV keeps its own 2**30)
os.environ.setdefault(OPENCV_PIXELS, str(default_max_pixels()))

import cv2
from tqdm import tqdm

from hint_plugin.errors import HINTError, NonFiniteError, OptionsError
from hint_plugin.inference import (DEFAULT_MIN_TILE, DEFAULT_OVERLAP, TILE_MERGES, available_memory, load_network,
                                   resolve_device, resolve_setup, restore_files)
from hint_plugin.precision import PRECISIONS, with_precision
from hint_plugin.utils.allocator import retain_freed_memory
from hint_plugin.utils.image_io import DEFAULT_JPEG_QUALITY

EXIT_OK, EXIT_FAILED, EXIT_SETUP = 0, 1, 2


def integer(minimum, maximum=None):
    """An argparse ``type``: an int from ``minimum`` to ``maximum`` (None: no upper bound)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'not an integer: {text!r}') from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f'must be {minimum} to {maximum}, got {value}' if maximum is not None
                                             else f'must be >= {minimum}, got {value}')
        return value

    return parse


def opencv_max_pixels():
    """OpenCV's pixel limit as set in the environment (a count), else :func:`default_max_pixels`."""
    try:
        return max(1, int(os.environ.get(OPENCV_PIXELS, '')))
    except ValueError:
        return default_max_pixels()


def suffix(text):
    """An argparse ``type`` for ``--suffix``: text added to a file name, so no path separator and no ``..``."""
    separators = {'/', os.sep, os.altsep} - {None}
    if any(separator in text for separator in separators) or '..' in text or '\0' in text:
        raise argparse.ArgumentTypeError(f'{text!r} would place outputs outside the output folder: a suffix is '
                                         'added to file names and may hold no "/", "\\" or ".."')
    return text


def add_network_arguments(parser, opt_keys='network_g, path.pretrain_network_g, path.param_key_g'):
    """The ``--opt``/``--weights``/``--config``/``--param-key`` group that :func:`resolve_setup` takes.

    Shared by the command lines that load a network and its checkpoint (inference, ONNX export); ``opt_keys``
    names the keys of ``--opt`` the command reads.
    """
    model = parser.add_argument_group('network and checkpoint (--opt, or --weights [--config])')
    model.add_argument('--opt', '-opt', metavar='TEST_YAML', help=f'BasicSR test options: {opt_keys}')
    model.add_argument('--weights', metavar='CKPT', help='checkpoint (overrides path.pretrain_network_g of --opt)')
    model.add_argument('--config', metavar='NETWORK_YAML',
                       help='any option file whose network_g describes the network (default: the network_g a '
                            '.safetensors file stores, else detected from HINT weights)')
    model.add_argument('--param-key', metavar='KEY',
                       help='checkpoint key, which must then exist (default: path.param_key_g of --opt, else '
                            'params_ema, falling back to params, then a bare state_dict)')


def silence_opencv():
    """Turn OpenCV's own log off: ``cv2.utils.logging`` in OpenCV 5, ``cv2.setLogLevel`` (0: silent) in OpenCV 4."""
    logging = getattr(cv2.utils, 'logging', None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    else:
        cv2.setLogLevel(0)


def build_parser():
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        description='Restore images with HINT (or any BasicSR network). Each image comes out with its size, '
                    'bit depth (8/16), channel count, alpha and format; inputs are never overwritten.',
        epilog='Grayscale images go through the network as RGB and are written back as the mean of the three '
               'restored channels; an alpha channel is copied unchanged; metadata (EXIF, ICC) is not carried '
               'over. Exit status: 0 all restored, 1 some images failed (listed in the summary), 2 bad arguments, '
               'options or checkpoint. Example: tools/inference.py -i noisy/ -o restored/ '
               '--opt options/test/HINT_GaussianColorDenoising_Blind.yml --tile 512')
    parser.add_argument('-i', '--input', nargs='+', required=True, metavar='INPUT',
                        help='image files, folders (their images) or quoted glob patterns ("photos/**/*.png")')
    parser.add_argument('-o', '--output', required=True, metavar='OUTPUT_DIR',
                        help='folder for the restored images, <stem><suffix><ext> (created if missing)')
    add_network_arguments(parser, opt_keys='network_g, path.pretrain_network_g, path.param_key_g, val.tile')
    tiling = parser.add_argument_group('tiling')
    tiling.add_argument('--tile', type=integer(0), metavar='SIZE',
                        help='restore in overlapping tiles of SIZE px, blended (default: val.tile.size of --opt, '
                             'else whole images; 0: whole images); at least the overlap rounded up to a multiple '
                             'of 8, plus 8 (40 for the default overlap)')
    tiling.add_argument('--tile-overlap', type=integer(0), metavar='N',
                        help=f'overlap of neighbouring tiles (default: val.tile.overlap, else {DEFAULT_OVERLAP})')
    tiling.add_argument('--tile-merge', choices=TILE_MERGES,
                        help="how overlapping tiles merge: cosine ramps, or the authors' plain average on their "
                             'grid (default: val.tile.merge, else cosine)')
    tiling.add_argument('--max-memory', type=float, metavar='GB',
                        help='without --tile: restore whole the images whose estimated need fits GB, the others '
                             'in the largest tiles that fit (default: 90%% of the memory available at start)')
    tiling.add_argument('--min-tile', type=integer(0), default=DEFAULT_MIN_TILE, metavar='SIZE',
                        help='smallest tile tried after running out of memory (tiles halve on each '
                             f'out-of-memory error; default {DEFAULT_MIN_TILE})')
    parser.add_argument('--device', default='auto', metavar='{auto,cpu,cuda,cuda:N}',
                        help='auto: cuda if available, else cpu (default auto)')
    parser.add_argument('--precision', choices=list(PRECISIONS), default='fp32',
                        help='fp32, or bf16 / fp16 under autocast where the device runs them; the attention\'s '
                             'norms, correlations and softmax stay in float32 (default fp32)')
    parser.add_argument('--suffix', type=suffix, default='',
                        help='appended to each output stem, no "/" or ".." (default none)')
    parser.add_argument('--max-pixels', type=integer(1), default=opencv_max_pixels(), metavar='N',
                        help='refuse images whose header declares more than N pixels, before decoding them '
                             f'(default: physical memory / {BYTES_PER_PIXEL} bytes, here %(default)s; also '
                             f'OpenCV\'s own limit, {OPENCV_PIXELS}, unless the environment sets it)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing outputs (an input is never replaced)')
    parser.add_argument('--jpeg-quality', type=integer(1, 100), default=DEFAULT_JPEG_QUALITY, metavar='1-100',
                        help=f'quality of JPEG outputs, 4:4:4 chroma (default {DEFAULT_JPEG_QUALITY})')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def peak_memory_gb():
    """This process's peak resident memory so far: Linux's ``VmHWM`` (``ru_maxrss`` elsewhere, which may carry the
    peak of the process that started this one)."""
    try:
        with open('/proc/self/status', encoding='ascii') as status:
            return next(int(line.split()[1]) for line in status if line.startswith('VmHWM:')) * 1024 / 1e9
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def main(argv=None):
    """The command line; returns the exit status (0 all restored, 1 some failed, 2 set-up error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_pixels > opencv_max_pixels():
        parser.error(f'--max-pixels {args.max_pixels} is above OpenCV\'s own limit, {opencv_max_pixels()} '
                     f'({OPENCV_PIXELS}, read when OpenCV loads): raise that environment variable too')
    start = time.perf_counter()
    retain_freed_memory()  # large CPU feature maps reuse memory instead of page-faulting
    silence_opencv()  # failures are reported by file name

    def log(message):
        tqdm.write(message, file=sys.stderr)

    try:
        setup = resolve_setup(args.opt, args.weights, args.config, args.param_key, args.tile, args.tile_overlap,
                              args.tile_merge)
        device = resolve_device(args.device)
        net = load_network(setup.network_opt, setup.weights, setup.param_key, setup.strict, device,
                           setup.exact_key)
        net = with_precision(net, args.precision, device)
        max_memory = None if args.tile == 0 else (available_memory(device) if args.max_memory is None
                                                  else int(args.max_memory * 1e9))
        channels = getattr(net, 'inp_channels', 3)
        if channels != 3:
            raise OptionsError(f'the network takes {channels}-channel inputs; this tool restores RGB, grayscale '
                               'and RGBA images (3 channels into the network)')
        summary = restore_files(args.input, args.output, net, device, setup.tile, setup.overlap, setup.window_size,
                                args.min_tile, args.suffix, args.overwrite, args.jpeg_quality,
                                progress=not args.no_progress and sys.stderr.isatty(), log=log, merge=setup.merge,
                                max_pixels=args.max_pixels, max_memory=max_memory)
    except NonFiniteError as error:  # raised while restoring: a runtime failure, not a set-up one
        print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
        return EXIT_FAILED
    except HINTError as error:
        print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
        return EXIT_SETUP
    print(f'{time.perf_counter() - start:.1f} s, peak memory {peak_memory_gb():.2f} GB (this process)',
          file=sys.stderr)
    print(summary, file=sys.stdout if summary.ok else sys.stderr)
    return EXIT_OK if summary.ok else EXIT_FAILED


if __name__ == '__main__':
    sys.exit(main())
