"""The checks the train and test entry points run before BasicSR builds anything: the command line (the option
file, ``--force_yml``, ``--launcher``) and the options it names (:func:`hint_plugin.utils.option_schema.check_options`).
"""
import argparse
import contextlib
import os
import sys

from hint_plugin.utils.option_schema import check_options
from hint_plugin.utils.options import OptionsError, read_options

TORCHRUN_VARIABLES = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def parse_basicsr_arguments(argv):
    """The arguments of BasicSR's ``parse_options`` that the checks need (the others are left to it)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--force_yml', nargs='+', default=None)
    return parser.parse_known_args(argv)[0]


def apply_force_yml(options, entries, source):
    """BasicSR's ``--force_yml a:b=value`` overrides (existing keys only), with the entry named when it fails."""
    from basicsr.utils.options import _postprocess_yml_value
    for entry in entries or ():
        if entry.count('=') != 1:
            raise OptionsError(f'--force_yml {entry!r}: expected KEY:SUBKEY=VALUE')
        keys, value = (part.strip() for part in entry.split('='))
        section, *parents, last = [options, *keys.split(':')]
        walked = []
        for key in [*parents, last][:-1]:
            walked.append(key)
            if not isinstance(section, dict) or key not in section:
                raise OptionsError(f'--force_yml {entry!r}: {source} has no key {":".join(walked)}')
            section = section[key]
        if not isinstance(section, dict) or last not in section:
            raise OptionsError(f'--force_yml {entry!r}: {source} has no key {keys} (it only changes existing keys)')
        section[last] = _postprocess_yml_value(value)


def check_launcher(launcher, environ=os.environ):
    """``--launcher pytorch`` needs torchrun's environment, ``slurm`` a Slurm job step."""
    if launcher == 'pytorch':
        missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
        if missing:
            raise OptionsError(f'--launcher pytorch: {", ".join(missing)} not set; start the command with torchrun '
                               '(torchrun --nproc_per_node=N tools/train.py -opt ... --launcher pytorch), or leave '
                               '--launcher out for one process')
    elif launcher == 'slurm' and 'SLURM_PROCID' not in environ:
        raise OptionsError('--launcher slurm: SLURM_PROCID not set; start the command with srun')


def check_command_line(is_train, argv=None):
    """Check the command line and its option file; on a problem, exit with status 2 and a message naming the
    file, the key and what was expected (``argv``: default ``sys.argv[1:]``)."""
    args = parse_basicsr_arguments(sys.argv[1:] if argv is None else argv)
    if not args.opt:
        return  # BasicSR's own parser says that -opt is required
    try:
        options = read_options(args.opt)
        apply_force_yml(options, args.force_yml, args.opt)
        check_options(options, is_train, source=args.opt)
        check_launcher(args.launcher)
    except OptionsError as error:
        sys.stderr.write(f'{"train" if is_train else "test"}: error: {error}\n')
        raise SystemExit(2) from None


def named_error_classes():
    """The plugin's errors whose message names the file or key at fault: shown alone, without a traceback."""
    from hint_plugin.data.checked_paired_image_dataset import PairedDataError
    from hint_plugin.data.lmdb_check import LmdbError
    from hint_plugin.models.hint_model import NonFiniteError
    from hint_plugin.utils.checkpoint import CheckpointError
    from hint_plugin.utils.resume import ResumeError
    return OptionsError, CheckpointError, PairedDataError, NonFiniteError, LmdbError, ResumeError


@contextlib.contextmanager
def exit_on_named_errors(program):
    """Turn the plugin's named errors (:func:`named_error_classes`) raised inside into ``program: error: ...``
    on stderr and exit status 1; other exceptions keep their traceback."""
    try:
        yield
    except named_error_classes() as error:
        sys.stderr.write(f'{program}: error: {error}\n')
        raise SystemExit(1) from None
