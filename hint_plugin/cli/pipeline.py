"""``hint-train`` and ``hint-test`` (``python tools/train.py``, ``python tools/test.py``): BasicSR's train and test
pipelines, with the plugin's fixes and checks first.

Before BasicSR builds anything, the command line and its option file are checked
(:func:`hint_plugin.utils.startup_checks.check_startup_options`; the file is read with YAML's safe loader, and so
is it by BasicSR's ``parse_options`` afterwards, see :func:`hint_plugin.compat.use_safe_option_files`): a problem
exits with status 2 and a message naming the file, the key and what was expected. A training then holds
``experiments/<name>.lock`` (:mod:`hint_plugin.utils.experiment_lock`): a second training of the same experiment
exits with status 2 while the first runs. The plugin's own errors raised later (a damaged checkpoint, LMDB, image
or training state, a checkpoint that cannot be saved: :class:`hint_plugin.errors.HINTError`) exit with status 1
and their message, without a traceback; Ctrl-C exits with status 130 and says how to resume.
"""
import argparse
import contextlib
import glob
import os
import re
import shlex
import sys
import traceback

from hint_plugin import compat
from hint_plugin.errors import HINTError, OptionsError
from hint_plugin.utils.allocator import retain_freed_memory
from hint_plugin.utils.experiment_lock import experiment_lock
from hint_plugin.utils.startup_checks import check_startup_options
from basicsr.test import test_pipeline  # after hint_plugin, which makes `import basicsr` work on new torchvision
from basicsr.train import train_pipeline


PIPELINE_DESCRIPTIONS = {
    True: 'Train a network with BasicSR\'s train pipeline and the HINT plugin: the option file is checked first, '
          'then BasicSR builds the model, datasets and loop. Outputs land in the working directory\'s '
          'experiments/<name>/ and tb_logger/<name>/. Recipes: options/train/. Docs: docs/training.md.',
    False: 'Evaluate a network with BasicSR\'s test pipeline and the HINT plugin: the option file is checked first, '
           'then every dataset under datasets: is restored and scored. Results and logs land in the working '
           'directory\'s results/<name>/. Recipes: options/test/. Docs: docs/reproduce.md.',
}


def pipeline_parser(is_train):
    """BasicSR's ``parse_options`` flags, with help (BasicSR parses them again itself; this parser checks first)."""
    parser = argparse.ArgumentParser(prog=f'hint-{program_name(is_train)}', add_help=False,
                                     description=PIPELINE_DESCRIPTIONS[is_train])
    parser.add_argument('-h', '--help', action='store_true', help='show this help message and exit')
    parser.add_argument('-opt', metavar='YAML', help='the option file (required)')
    parser.add_argument('--launcher', default='none', choices=['none', 'pytorch', 'slurm'],
                        help='distributed launcher: pytorch under torchrun (tools/dist_train.sh), slurm under srun')
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override option-file values, e.g. train:ema_decay=0.999 (checked like the file)')
    parser.add_argument('--debug', action='store_true', help="BasicSR's debug mode (few iterations, frequent logs)")
    if is_train:
        parser.add_argument('--auto_resume', action='store_true',
                            help="resume from the experiment's latest training state")
    parser.add_argument('--local_rank', type=int, default=0, help='set by older launchers; torchrun uses LOCAL_RANK')
    return parser


def parse_basicsr_arguments(argv, is_train=True):
    """The arguments of BasicSR's ``parse_options`` that the checks need (the others are left to it)."""
    return pipeline_parser(is_train).parse_known_args(argv)[0]


def program_name(is_train):
    return 'train' if is_train else 'test'


def exit_with_options_error(error, is_train):
    """``train: error: <message>`` on stderr, exit status 2."""
    sys.stderr.write(f'{program_name(is_train)}: error: {error}\n')
    raise SystemExit(2) from None


def check_command_line(is_train, argv=None):
    """Check the command line and its option file; on a problem, exit with status 2 and a message naming the
    file, the key and what was expected (``argv``: default ``sys.argv[1:]``). Returns ``(arguments, options)``,
    or ``None`` without ``-opt`` (BasicSR's own parser then says that it is required)."""
    args = parse_basicsr_arguments(sys.argv[1:] if argv is None else argv, is_train)
    if args.help:
        pipeline_parser(is_train).print_help()
        raise SystemExit(0)
    if not args.opt:
        return None
    try:
        return args, check_startup_options(args.opt, args.force_yml, args.launcher, is_train)
    except OptionsError as error:
        exit_with_options_error(error, is_train)


def experiment_name(options, args):
    """The folder name BasicSR gives the run (``--debug`` prefixes ``debug_``, as BasicSR's ``parse_options``)."""
    name = options['name']
    return f'debug_{name}' if args.debug and not name.startswith('debug') else name


def is_first_process(launcher, environ=os.environ):
    """Whether this process is rank 0 of its launcher (the one that writes the experiment folder)."""
    variable = {'pytorch': 'RANK', 'slurm': 'SLURM_PROCID'}.get(launcher)
    return variable is None or environ.get(variable, '0') == '0'


@contextlib.contextmanager
def training_lock(root, checked, is_train):
    """Hold ``<root>/experiments/<name>.lock`` while a training's first process runs; a running training of the
    same experiment exits with status 2."""
    if not (is_train and checked and is_first_process(checked[0].launcher)):
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(experiment_lock(os.path.join(root, 'experiments'),
                                                experiment_name(checked[1], checked[0])))
        except OptionsError as error:
            exit_with_options_error(error, is_train)
        yield


@contextlib.contextmanager
def exit_on_named_errors(program):
    """The plugin's errors raised inside (their messages name the file or key at fault) become
    ``program: error: ...`` on stderr and exit status 1; other exceptions keep their traceback."""
    try:
        yield
    except HINTError as error:
        sys.stderr.write(f'{program}: error: {error}\n')
        raise SystemExit(1) from None


def iteration_reached(error):
    """The ``current_iter`` of BasicSR's training loop where ``error`` went through it (``None``: not reached)."""
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_name == 'train_pipeline' and 'current_iter' in frame.f_locals:
            return frame.f_locals['current_iter']
    return None


def last_saved_iteration(root, name):
    """The iteration of the newest complete ``experiments/<name>/training_states/<iter>.state`` (``None``: none)."""
    states = glob.glob(os.path.join(glob.escape(os.path.join(root, 'experiments', name, 'training_states')),
                                    '*.state'))
    iterations = [int(match.group(1)) for match in (re.fullmatch(r'(\d+)\.state', os.path.basename(state))
                                                    for state in states) if match]
    return max(iterations, default=None)


def resume_command(argv):
    """The command line that resumes the interrupted one: the same with BasicSR's ``--auto_resume``."""
    return shlex.join(['python', *argv] + ([] if '--auto_resume' in argv else ['--auto_resume']))


def interrupted_message(error, root, checked, is_train, argv):
    """What Ctrl-C stopped and, for a training, the iteration reached and how to resume it."""
    if not is_train or not checked:
        return f'{program_name(is_train)}: interrupted (Ctrl-C)'
    reached, saved = iteration_reached(error), last_saved_iteration(root, experiment_name(checked[1], checked[0]))
    where = f'during iteration {reached}' if reached is not None else 'before the first iteration'
    if saved is None:
        return f'train: interrupted (Ctrl-C) {where}; no training state was saved yet, so start again with: ' \
               f'{shlex.join(["python", *argv])}'
    return f'train: interrupted (Ctrl-C) {where}; the last saved training state is iteration {saved}: resume ' \
           f'from it with: {resume_command(argv)}'


def run_pipeline(pipeline, is_train):
    """:func:`compat.apply_training_fixes`, the checks, then BasicSR's ``pipeline(root)`` in the working folder
    (a training holding its experiment's lock); Ctrl-C exits with status 130 and says how to resume."""
    compat.apply_training_fixes()  # safe YAML, CPU/gloo distributed init, CPU resume, exact data order, LMDB sharing
    checked = check_command_line(is_train)  # the option file and flags, before anything is built
    retain_freed_memory()  # large CPU feature maps reuse memory instead of page-faulting
    root = os.getcwd()
    try:
        with exit_on_named_errors(program_name(is_train)), training_lock(root, checked, is_train):
            pipeline(root)
    except KeyboardInterrupt as error:
        sys.stderr.write(interrupted_message(error, root, checked, is_train, sys.argv) + '\n')
        raise SystemExit(130) from None


def train_main():
    """``hint-train -opt options/train/X.yml [BasicSR flags]``: BasicSR's train pipeline with HINT.

    Every BasicSR flag works (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``); outputs land in the
    working directory's ``experiments/`` and ``tb_logger/``.
    """
    run_pipeline(train_pipeline, is_train=True)


def test_main():
    """``hint-test -opt options/test/X.yml``: BasicSR's test pipeline with HINT; results and logs land in the
    working directory's ``results/<name>/``."""
    run_pipeline(test_pipeline, is_train=False)
