"""The exceptions users of the plugin catch; each message names the file, key or value at fault.

``HINTError`` is the base of all of them, so ``except HINTError`` catches whatever the plugin reports about
its input. Each type also derives from the built-in exception it used to be (``ValueError`` ...), so code that
catches those keeps working.
"""


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
