"""Files written whole or not at all: a kill or an error during the write leaves the previous file intact."""
import contextlib
import os


def atomic_write(path, write):
    """``write(file)`` into ``<path>.tmp``, flushed to disk, then renamed over ``path``; the ``.tmp`` file is
    removed when ``write`` fails, so ``path`` is always either the old file or the complete new one."""
    temporary = f'{path}.tmp'
    try:
        with open(temporary, 'wb') as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
