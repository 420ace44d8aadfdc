"""What ``tools/train.py`` and ``tools/test.py`` share: BasicSR's pipeline, with the plugin's fixes and checks first.

Before BasicSR builds anything, the command line and its option file are checked
(:func:`hint_plugin.utils.startup_checks.check_startup_options`): a problem exits with status 2 and a message
naming the file, the key and what was expected. The plugin's own errors raised later (a damaged checkpoint, LMDB,
image or training state: :class:`hint_plugin.errors.HINTError`) exit with status 1 and their message, without a
traceback.
"""
import argparse
import contextlib
import os
import sys

import hint_plugin  # noqa: F401  (registers HINT; first, since it makes `import basicsr` work on new torchvision)
from hint_plugin import compat
from hint_plugin.errors import HINTError, OptionsError
from hint_plugin.utils.allocator import retain_freed_memory
from hint_plugin.utils.startup_checks import check_startup_options


def parse_basicsr_arguments(argv):
    """The arguments of BasicSR's ``parse_options`` that the checks need (the others are left to it)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--force_yml', nargs='+', default=None)
    return parser.parse_known_args(argv)[0]


def check_command_line(is_train, argv=None):
    """Check the command line and its option file; on a problem, exit with status 2 and a message naming the
    file, the key and what was expected (``argv``: default ``sys.argv[1:]``)."""
    args = parse_basicsr_arguments(sys.argv[1:] if argv is None else argv)
    if not args.opt:
        return  # BasicSR's own parser says that -opt is required
    try:
        check_startup_options(args.opt, args.force_yml, args.launcher, is_train)
    except OptionsError as error:
        sys.stderr.write(f'{"train" if is_train else "test"}: error: {error}\n')
        raise SystemExit(2) from None


@contextlib.contextmanager
def exit_on_named_errors(program):
    """The plugin's errors raised inside (their messages name the file or key at fault) become
    ``program: error: ...`` on stderr and exit status 1; other exceptions keep their traceback."""
    try:
        yield
    except HINTError as error:
        sys.stderr.write(f'{program}: error: {error}\n')
        raise SystemExit(1) from None


def run_pipeline(pipeline, is_train):
    """:func:`compat.apply_training_fixes`, the checks, then BasicSR's ``pipeline(root)`` in the working folder."""
    compat.apply_training_fixes()  # CPU/gloo distributed init, CPU resume, exact data order on resume, LMDB sharing
    check_command_line(is_train)  # the option file and flags, before anything is built
    retain_freed_memory()  # large CPU feature maps reuse memory instead of page-faulting
    with exit_on_named_errors('train' if is_train else 'test'):
        pipeline(os.getcwd())
