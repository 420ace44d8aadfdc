"""Keep freed memory inside the process (glibc): large CPU feature maps then reuse pages instead of faulting.

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and returns it to
the system on ``free``. HINT's full-resolution feature maps are larger than that (a 256x256 FFN activation is
134 MB), so without this every such tensor is paged in anew, and the kernel zeroes each page: measured on the
project's 2-core machine, a 96 -> 510 1x1 convolution at 256x256 took 215 ms that way and 59 ms once freed
memory was kept (``docs/benchmarks.md``). It is the effect that jemalloc or tcmalloc give when preloaded, with
no extra library: ``mallopt`` turns off mmap for allocations and trimming of the heap's top
(below 2 GB).

The cost: memory freed after the peak stays with the process until it exits (the peak itself is unchanged).
Entry points (training, testing, inference, the benchmark, the demo) call :func:`retain_freed_memory`; set
``HINT_RETAIN_FREED_MEMORY=0`` to keep glibc's defaults.
"""
import ctypes
import ctypes.util
import os
import sys

ENV_SWITCH = 'HINT_RETAIN_FREED_MEMORY'
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_MAX = -4
_TRIM_ONLY_ABOVE = 2**31 - 1  # the largest value mallopt takes: trim only a free top over 2 GB


def _glibc():
    """The C library when it is glibc (it has ``mallopt``), else ``None``."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # musl and others have no mallopt
        return None
    return libc


def retain_freed_memory():
    """Tell glibc to keep freed memory for reuse; returns whether the setting was applied.

    Does nothing (returns ``False``) where the C library is not glibc or ``HINT_RETAIN_FREED_MEMORY=0``.
    """
    if os.environ.get(ENV_SWITCH, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return False
    libc = _glibc()
    if libc is None:
        return False
    no_mmap = libc.mallopt(_M_MMAP_MAX, 0) == 1
    no_trim = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_ONLY_ABOVE) == 1
    return no_mmap and no_trim
