"""Image files in and out for inference: what comes in goes out in the same form.

An image is a NumPy array as OpenCV reads it with ``IMREAD_UNCHANGED``: ``uint8`` or ``uint16``, shaped
``(H, W)`` or ``(H, W, 1)`` (grayscale), ``(H, W, 2)`` (grayscale + alpha), ``(H, W, 3)`` (BGR) or
``(H, W, 4)`` (BGRA). :func:`to_rgb_float` turns it into the float RGB image a BasicSR network takes (grayscale
replicated to three channels) plus its alpha channel, kept apart and untouched; :func:`from_rgb_float` turns a
restored float RGB image back into the same shape and dtype:

* 8-bit stays 8-bit (scaled by 255), 16-bit stays 16-bit (scaled by 65535), rounded to the nearest level;
* grayscale comes back as the mean of the three restored channels (a network fed three equal channels gives
  three nearly equal ones; the mean weighs them alike rather than favouring green as a luma formula would);
* the alpha channel comes back bit-identical.

No torch here: the conversion to tensors lives with the network (:mod:`hint_plugin.inference`).
"""
import os

import cv2
import numpy as np

from hint_plugin.errors import ImageError  # noqa: F401  (raised here; importable from here too)

# What a folder or a glob picks up; a file named explicitly is tried whatever its extension.
IMAGE_EXTENSIONS = ('.bmp', '.jpe', '.jpeg', '.jpg', '.pgm', '.png', '.pnm', '.ppm', '.tif', '.tiff', '.webp')
SCANDIR_SUFFIXES = IMAGE_EXTENSIONS + tuple(extension.upper() for extension in IMAGE_EXTENSIONS)  # case-sensitive
JPEG_EXTENSIONS = ('.jpe', '.jpeg', '.jpg')
MAX_VALUES = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
DEFAULT_JPEG_QUALITY = 95


def is_image_file(path):
    """Whether ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def jpeg_is_truncated(data):
    """Whether the JPEG bytes ``data`` lack an end-of-image marker after their last scan.

    ``cv2.imread`` decodes a truncated JPEG without an error (libjpeg fills the missing rows with grey and
    prints "Premature end of JPEG file"); ``cv2.imdecode`` mostly refuses it, but without saying why. In the
    entropy-coded data a ``0xFF`` byte is always followed by ``0x00`` or a restart marker, so the last
    start-of-scan marker (``FFDA``) is that of the main image's last scan (an EXIF thumbnail sits before it) and
    a complete file has an ``FFD9`` after it.
    """
    start_of_scan = data.rfind(b'\xff\xda')
    return start_of_scan < 0 or data.find(b'\xff\xd9', start_of_scan) < 0


def check_image(image, path='image'):
    """Raise :class:`ImageError` unless ``image`` is an array this module can convert."""
    if not isinstance(image, np.ndarray):
        raise ImageError(path, f'expected a NumPy array, got {type(image).__name__}')
    if image.dtype not in MAX_VALUES:
        raise ImageError(path, f'unsupported pixel type {image.dtype} (8- and 16-bit images only)')
    if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ImageError(path, f'unsupported image shape {image.shape} (1 to 4 channels)')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(path, f'empty image {image.shape}')


def declared_size(path):
    """``(width, height)`` that the image file ``path`` declares in its header, read without decoding the pixels
    (Pillow's lazy ``Image.open``), or None when Pillow cannot tell (OpenCV's decoder then judges the file).

    Pillow's own decompression-bomb check (``Image.MAX_IMAGE_PIXELS``) is off for this call only: it would
    refuse a huge image before telling its size, and the caller's limit is what counts.
    """
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # noqa: BLE001  (any file Pillow cannot identify: OpenCV's decoder reports it by name)
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def check_pixel_count(path, max_pixels):
    """Raise :class:`ImageError` when ``path`` declares more than ``max_pixels`` pixels (before decoding it:
    a small file can declare a gigantic image, a decompression bomb)."""
    size = declared_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(path, f'declares {size[0]} x {size[1]} = {size[0] * size[1]} pixels, above the limit of '
                               f'{max_pixels} (--max-pixels); refused before decoding')


def read_image(path, max_pixels=None):
    """The image stored in ``path`` as OpenCV's ``IMREAD_UNCHANGED`` gives it (BGR(A) order, 8 or 16 bits).

    With ``max_pixels``, an image whose header declares more pixels is refused before it is decoded
    (:func:`check_pixel_count`).

    The file is read into memory and decoded with ``cv2.imdecode`` (the pixels ``cv2.imread`` gives, for any
    path; a truncated JPEG, which ``cv2.imread`` fills up with grey, is refused by name). Raises
    :class:`ImageError` naming ``path`` when the file is missing, truncated, not an image, or of another pixel
    type than 8/16-bit with 1 to 4 channels.
    """
    if max_pixels is not None and os.path.isfile(path):
        check_pixel_count(path, max_pixels)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(path, 'no such file') from None
    except IsADirectoryError:
        raise ImageError(path, 'is a folder') from None
    except OSError as error:
        raise ImageError(path, f'cannot be read ({error.strerror or error})') from None
    if data[:2].tobytes() == b'\xff\xd8' and jpeg_is_truncated(data.tobytes()):
        raise ImageError(path, 'truncated JPEG (no end-of-image marker after its last scan)')
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as error:  # OpenCV's own pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS), or a decoder's assertion
        if 'CV_IO_MAX_IMAGE_PIXELS' in str(error):
            raise ImageError(path, 'declares more pixels than OpenCV\'s limit (the environment variable '
                                   'OPENCV_IO_MAX_IMAGE_PIXELS); refused before decoding') from None
        raise ImageError(path, f'OpenCV cannot decode it ({str(error).strip().splitlines()[-1]})') from None
    if image is None:
        raise ImageError(path, 'not a readable image (empty, truncated, corrupt or of an unknown format)')
    check_image(image, path)
    return image


def to_rgb_float(image):
    """``image`` (see the module docstring) -> ``(rgb, alpha)``.

    ``rgb`` is ``(H, W, 3)`` float32 in [0, 1], RGB order (grayscale replicated); ``alpha`` is the alpha channel
    as stored (``(H, W)``, original dtype) or None.
    """
    check_image(image)
    planes = image if image.ndim == 3 else image[..., None]
    colour, alpha = (planes[..., :-1], planes[..., -1]) if planes.shape[2] in (2, 4) else (planes, None)
    rgb = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour[..., ::-1]
    rgb = rgb.astype(np.float32) / np.float32(MAX_VALUES[image.dtype])
    return np.ascontiguousarray(rgb), None if alpha is None else alpha.copy()


def from_rgb_float(rgb, like, alpha=None):
    """A restored ``(H, W, 3)`` float RGB image in the form of ``like``: same shape, dtype, channels.

    Values are clipped to [0, 1] and rounded to the nearest level of ``like``'s dtype. Grayscale ``like``
    gets the mean of the three channels. ``alpha`` (from :func:`to_rgb_float`) goes back in unchanged.
    """
    check_image(like)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != like.shape[:2]:
        raise ValueError(f'expected a {like.shape[0]}x{like.shape[1]}x3 restored image, got {rgb.shape}')
    channels = 1 if like.ndim == 2 else like.shape[2]
    if (channels in (2, 4)) != (alpha is not None):
        raise ValueError(f'a {channels}-channel image needs {"its" if channels in (2, 4) else "no"} alpha')
    max_value = MAX_VALUES[like.dtype]
    colour = rgb.mean(axis=2, keepdims=True) if channels <= 2 else rgb[..., ::-1]
    colour = np.rint(np.clip(colour, 0, 1) * max_value).astype(like.dtype)
    if alpha is not None:
        colour = np.concatenate([colour, alpha.reshape(*alpha.shape[:2], 1).astype(like.dtype)], axis=2)
    return colour.reshape(like.shape)


def crop_center(image, size, channels_last=True):
    """The central ``size x size`` window of ``image``: a ``(H, W, ...)`` array when ``channels_last``, else a
    ``(..., H, W)`` tensor. Its top-left corner is ``((H - size) // 2, (W - size) // 2)``; a side shorter than
    ``size`` is kept whole. The one centre crop (datasets, the demo, the precision table)."""
    height, width = image.shape[:2] if channels_last else image.shape[-2:]
    top, left = max((height - size) // 2, 0), max((width - size) // 2, 0)
    window = (slice(top, top + size), slice(left, left + size))
    return image[window] if channels_last else image[(..., *window)]


def encode_parameters(extension, jpeg_quality=DEFAULT_JPEG_QUALITY):
    """``cv2.imencode`` parameters: high-quality JPEG (4:4:4 chroma); OpenCV's defaults elsewhere.

    PNG and TIFF are lossless and keep 16 bits; WebP without parameters is lossless in OpenCV.
    """
    if extension.lower() in JPEG_EXTENSIONS:
        return [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality),
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    return []


def write_image(path, image, overwrite=False, jpeg_quality=DEFAULT_JPEG_QUALITY):
    """Write ``image`` to ``path`` in the format its extension names.

    The image is encoded in memory, written to a temporary file beside ``path`` and renamed onto it, so an
    interrupted run never leaves half a file. Raises :class:`ImageError` when ``path`` exists and not
    ``overwrite``, when the format cannot hold the image (e.g. 16 bits in a JPEG), or when writing fails.
    """
    check_image(image, path)
    extension = os.path.splitext(path)[1]
    if not overwrite and os.path.lexists(path):
        raise ImageError(path, 'output exists (use --overwrite to replace it)')
    if image.dtype == np.uint16 and extension.lower() in JPEG_EXTENSIONS + ('.bmp',):
        raise ImageError(path, f'a {extension} file cannot hold 16 bits per channel')
    try:
        ok, encoded = cv2.imencode(extension, image, encode_parameters(extension, jpeg_quality))
    except cv2.error as error:
        raise ImageError(path, f'cannot encode as {extension or "(no extension)"}: '
                               f'{str(error).strip().splitlines()[-1]}') from None
    if not ok:
        raise ImageError(path, f'cannot encode as {extension or "(no extension)"}')
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f'.{name}.{os.getpid()}.tmp')
    try:
        encoded.tofile(temporary)
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise ImageError(path, f'cannot be written ({error.strerror or error})') from None
