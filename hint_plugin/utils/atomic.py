"""Files written whole or not at all: a kill or an error during the write leaves the previous file intact."""
import contextlib
import os

from hint_plugin.errors import SaveError


def atomic_write(path, write):
    """``write(file)`` into ``<path>.tmp``, flushed to disk, then renamed over ``path``; the ``.tmp`` file is
    removed when ``write`` fails, so ``path`` is always either the old file or the complete new one.

    An ``OSError`` (disk full, read-only folder) becomes :class:`SaveError` naming ``path`` and what was kept.
    """
    temporary = f'{path}.tmp'
    try:
        with open(temporary, 'wb') as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and not isinstance(error, SaveError):
            kept = 'its previous version is intact' if os.path.exists(path) else 'nothing was written under that name'
            raise SaveError(f'cannot save {path}: {error.strerror or error}; {kept}, and so is every checkpoint '
                            'and training state saved before it (resume from the last complete one)') from None
        raise
