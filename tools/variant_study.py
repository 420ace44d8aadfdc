"""``python tools/variant_study.py``: official against refined HINT, same recipe and budget, several seeds.

See :mod:`hint_plugin.variant_study`; this script only parses the command line.
"""
import argparse
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import hint_plugin  # noqa: E402,F401  (before any basicsr import: it patches a torchvision import)
from hint_plugin.demo import DemoError  # noqa: E402
from hint_plugin.variant_study import DEFAULT_ITERS, QUICK_ITERS, TASKS, StudyError, run_study  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train the official and the refined HINT variant with the demo recipe on synthetic tasks made '
        "from scikit-image's photographs (blind denoising, low light), for several seeds, and report the held-out "
        'PSNR/SSIM mean and spread. Writes datasets/, experiments/ and results/variant_study/ under --workdir.')
    parser.add_argument('--tasks', nargs='+', choices=TASKS, default=list(TASKS), help='default: both')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='default: 0 1 2')
    parser.add_argument('--iters', type=int, default=None,
                        help=f'training iterations per run (default: {DEFAULT_ITERS}; --quick: {QUICK_ITERS})')
    parser.add_argument('--jobs', type=int, default=1, help='runs at a time (default: 1)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads per run (default: CPU cores / jobs)')
    parser.add_argument('--workdir', default='.', help='folder for the data and outputs (default: the current one)')
    parser.add_argument('--quick', action='store_true', help='a tiny network: checks the pipeline (the tests)')
    args = parser.parse_args(argv)
    if args.iters is None:
        args.iters = QUICK_ITERS if args.quick else DEFAULT_ITERS
    for name in ('iters', 'jobs', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be at least 1, got {value}')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        run_study(args.workdir, tuple(args.tasks), tuple(args.seeds), args.iters, args.jobs, args.threads,
                  args.quick)
    except (StudyError, DemoError) as err:
        sys.exit(f'variant_study.py: error: {err}')


if __name__ == '__main__':
    main()
