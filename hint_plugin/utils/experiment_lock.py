"""One training per experiment folder at a time: ``experiments/<name>.lock`` holds the process id and host of the
training that uses ``experiments/<name>``.

The lock sits next to the folder, inside ``experiments/``, because BasicSR archives (renames) an existing
``experiments/<name>`` when a fresh training starts: a lock inside would move away with it. It is created
atomically (``O_EXCL``), removed when the training ends (normally, on an error or on Ctrl-C), and taken over when
the process it names is gone on this host, so a killed run does not leave it stuck.
"""
import contextlib
import os
import socket

from hint_plugin.errors import OptionsError, SaveError


def lock_path(experiments_root, name):
    """The lock file of the experiment ``name`` under the folder ``experiments_root``."""
    return os.path.join(experiments_root, f'{name}.lock')


def process_alive(pid):
    """Whether a process with id ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def read_holder(path):
    """``(pid, host)`` written in the lock file ``path``; ``(None, None)`` when it is unreadable or empty."""
    try:
        with open(path, encoding='utf-8') as file:
            pid, host = file.read().split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None, None


def holder_is_running(path):
    """Whether the training named in the lock ``path`` may still run (an unreadable lock, or one of another host,
    counts as running: it cannot be checked from here)."""
    pid, host = read_holder(path)
    if pid is None or host != socket.gethostname():
        return True
    return process_alive(pid)


def acquire(path):
    """Create the lock file ``path`` holding this process; take over a stale one; :class:`OptionsError` when a
    running training holds it."""
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if holder_is_running(path):
                pid, host = read_holder(path)
                holder = f'process {pid} on {host}' if pid is not None else 'another training'
                raise OptionsError(f'{path}: {holder} is training into this experiment folder; wait for it to end, '
                                   'choose another name, or delete this file if no such training runs') from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # its process is gone: a killed run
            continue
        with os.fdopen(descriptor, 'w', encoding='utf-8') as file:
            file.write(f'{os.getpid()} {socket.gethostname()}\n')
        return
    raise OptionsError(f'{path}: could not take over this lock (another training started at the same moment?)')


@contextlib.contextmanager
def experiment_lock(experiments_root, name):
    """Hold ``experiments/<name>.lock`` (see the module docstring) for the duration of the ``with`` block."""
    path = lock_path(experiments_root, name)
    if os.path.isdir(path):
        raise OptionsError(f'{path} is a folder, so the experiment {name!r} cannot be locked; rename one of them')
    try:
        os.makedirs(experiments_root, exist_ok=True)
        acquire(path)
    except OSError as error:
        raise SaveError(f'cannot create the experiment lock {path}: {error.strerror or error}') from None
    try:
        yield path
    finally:
        if read_holder(path)[0] == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
