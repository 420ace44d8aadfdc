"""The exceptions users of the plugin catch; each message names the file, key or value at fault.

``HINTError`` is the base of all of them, so ``except HINTError`` catches whatever the plugin reports about
its input. Each type also derives from the built-in exception it used to be (``ValueError`` ...), so code that
catches those keeps working.
"""
from numbers import Integral


class HINTError(Exception):
    """Base of the plugin's own errors."""


class OptionsError(HINTError, ValueError):
    """An option file or a setting that cannot be read or lacks what is needed; the message names file and key."""


class CheckpointError(HINTError, RuntimeError):
    """A checkpoint that cannot be read safely or does not fit the network."""


class StateDictError(HINTError, ValueError):
    """An object that is not a state dict of tensors (nor holds one under "params_ema" / "params")."""


class NotHINTStateDictError(StateDictError):
    """A state dict that is not one of HINT's; the message names the missing key or the inconsistency."""


class DataError(HINTError, ValueError):
    """A dataset that cannot be read (paired files or LMDB keys) or turned into LMDBs as asked."""


class LmdbError(DataError, OSError):
    """An LMDB that cannot be opened or read (missing, truncated, a key that is no image); names its folder."""


class ResumeError(CheckpointError):
    """A training state that cannot be resumed from; the message names the file (and the experiments)."""


class ImageError(HINTError):
    """An image file that cannot be found, read, converted or written; ``reason`` says why without the path."""

    def __init__(self, path, reason):
        super().__init__(f'{path}: {reason}')
        self.path, self.reason = path, reason


class NonFiniteError(HINTError, FloatingPointError):
    """A NaN or an infinity where finite numbers are needed: a loss, weights about to be saved, or a network's
    output about to be written or scored (finite but huge weights overflow)."""


class ExportError(HINTError, RuntimeError):
    """ONNX export impossible (missing packages, bad arguments), or an export that does not match PyTorch."""


class SaveError(HINTError, OSError):
    """A file that could not be written (disk full, read-only folder); the message names it and says what was kept."""


# The small checks every layer may use (the architectures included): each names the option and what was expected.

def check_int(name, value, minimum):
    """``value`` must be an int (not a bool) >= ``minimum``; else an ``OptionsError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise OptionsError(f'{name} must be an integer >= {minimum}, got {value!r}')


def check_int_list(name, value, length, minimum):
    """``value`` must be a list/tuple of ``length`` ints >= ``minimum`` (any length when ``length`` is None)."""
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
        raise OptionsError(f'{name} must be a list of {length or "some"} integers, got {value!r}')
    for i, item in enumerate(value):
        check_int(f'{name}[{i}]', item, minimum)


def check_bool(name, value):
    """``value`` must be a real bool (YAML true/false), not a string or number."""
    if not isinstance(value, bool):
        raise OptionsError(f'{name} must be true or false, got {value!r}')


def check_choice(name, value, choices):
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise OptionsError(f'{name} must be one of {tuple(choices)}, got {value!r}')


def check_plain_name(value, what):
    """Raise :class:`OptionsError` unless ``value`` is one plain path component (a folder or file name of its own:
    not empty, no ``/`` or ``\\``, not ``.`` or ``..``); ``what`` names the option in the message."""
    if not isinstance(value, str) or not value.strip() or value in ('.', '..') or '/' in value or '\\' in value:
        raise OptionsError(f'{what} = {value!r}: expected a plain name (not empty, no / or \\, not . or ..); it '
                           'becomes one folder or file name under its parent folder')
