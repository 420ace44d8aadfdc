"""LMDBs checked when opened, and on request key by key.

A ``data.mdb`` shorter than the pages its environment says it uses (a truncated copy, a full disk) opens
without complaint and then kills the process with SIGBUS at the first read past its end; :func:`check_lmdb_size`
names the file instead. :func:`verify_lmdb` reads and decodes every key (``tools/create_lmdb.py --verify``).
:func:`open_shared_lmdb` opens each read-only LMDB once per process (BasicSR's ``LmdbBackend`` goes through it
once :func:`hint_plugin.compat.share_lmdb_environments` applies).
"""
import os
import weakref
from os import path as osp

import cv2
import numpy as np

from hint_plugin.errors import LmdbError  # noqa: F401  (raised here; importable from here too)


def data_file(lmdb_path):
    """The data file of the LMDB environment at ``lmdb_path`` (a folder holding ``data.mdb``, or the file)."""
    return osp.join(lmdb_path, 'data.mdb') if osp.isdir(lmdb_path) else lmdb_path


def check_lmdb_size(environment, lmdb_path):
    """Raise :class:`LmdbError` when the data file holds fewer bytes than ``environment`` says it uses.

    The pages in use are ``info()['last_pgno'] + 1`` of ``stat()['psize']`` bytes each (from the meta pages at
    the start of the file, which a truncated file still has).
    """
    needed = (environment.info()['last_pgno'] + 1) * environment.stat()['psize']
    size = os.path.getsize(data_file(lmdb_path))
    if size < needed:
        raise LmdbError(f"LMDB '{lmdb_path}' is damaged: its data file {data_file(lmdb_path)} has {size} bytes but the "
                        f'environment uses {needed} (a truncated copy?); copy it again or rebuild it with '
                        'tools/create_lmdb.py')


def open_checked_lmdb(lmdb_path, **options):
    """``lmdb.open(lmdb_path, **options)`` whose problems are named: a missing folder, a file that is no LMDB,
    a truncated data file (:func:`check_lmdb_size`)."""
    import lmdb

    if not osp.exists(data_file(lmdb_path)):
        raise LmdbError(f"LMDB '{lmdb_path}' not found (expected a folder with data.mdb, e.g. written by "
                        'tools/create_lmdb.py)')
    try:
        environment = lmdb.open(lmdb_path, **options)
    except lmdb.Error as error:
        raise LmdbError(f"LMDB '{lmdb_path}' cannot be opened: {error}") from None
    try:
        check_lmdb_size(environment, lmdb_path)
    except LmdbError:
        environment.close()
        raise
    return environment


_SHARED_LMDB = weakref.WeakValueDictionary()  # (process id, real path, options) -> lmdb.Environment


def open_shared_lmdb(path, **options):
    """A read-only ``lmdb.Environment`` of ``path``, one per process while someone holds it.

    py-lmdb 3 refuses to open an environment that this process holds open already, which BasicSR's
    ``LmdbBackend`` does for every dataset: training and validation on one LMDB (with 0 data-loader workers)
    would fail. Read-only environments are shared instead; the process id in the key keeps a forked data-loader
    worker from using its parent's environment, and the weak references close one when its last user goes.
    """
    key = (os.getpid(), os.path.realpath(path), tuple(sorted(options.items())))
    environment = _SHARED_LMDB.get(key)
    if environment is None:
        environment = _SHARED_LMDB[key] = open_checked_lmdb(path, readonly=True, **options)  # a damaged one named
    return environment


def meta_info_keys(lmdb_path):
    """The keys that ``meta_info.txt`` of ``lmdb_path`` lists (each line up to its first dot), or None."""
    meta_info = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta_info):
        return None
    with open(meta_info, encoding='utf-8') as file:
        return [line.split('.')[0] for line in file if line.strip()]  # as basicsr's paths_from_lmdb


def verify_lmdb(lmdb_path):
    """Read and decode every key of the LMDB at ``lmdb_path``; returns the number of keys.

    Raises :class:`LmdbError` naming the first key that cannot be read or decoded as an image, and the keys of
    ``meta_info.txt`` missing from the LMDB.
    """
    import lmdb

    environment = open_checked_lmdb(lmdb_path, readonly=True, lock=False, readahead=False)
    count = 0
    try:
        with environment.begin() as transaction:
            for key, value in transaction.cursor():
                image = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED) if value else None
                if image is None:
                    raise LmdbError(f"LMDB '{lmdb_path}': key '{key.decode(errors='replace')}' holds "
                                    f'{len(value)} bytes that are not an image')
                count += 1
            listed = meta_info_keys(lmdb_path)
            missing = [key for key in listed or () if transaction.get(key.encode()) is None]
    except lmdb.Error as error:
        raise LmdbError(f"LMDB '{lmdb_path}' cannot be read after {count} keys: {error}") from None
    finally:
        environment.close()
    if missing:
        from hint_plugin.utils.messages import listing
        raise LmdbError(f"LMDB '{lmdb_path}': meta_info.txt lists {listing(missing, 'key')} not in the LMDB")
    return count


def check_lmdb(lmdb_path):
    """Open the LMDB at ``lmdb_path`` as BasicSR's ``LmdbBackend`` does (read-only, shared within the process),
    which checks it (:func:`open_checked_lmdb`), and let it go: datasets call it when they are built, in the
    main process, so that a damaged LMDB is named before any data-loader worker starts."""
    open_shared_lmdb(lmdb_path, lock=False, readahead=False)
