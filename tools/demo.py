"""``python tools/demo.py`` (``make demo``): HINT trained and evaluated through BasicSR on photographs, on a CPU.

See :mod:`hint_plugin.demo` for the steps; this script only parses the command line.
"""
import argparse
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import hint_plugin  # noqa: E402,F401  (before any basicsr import: it patches a torchvision import)
from hint_plugin.demo import DemoError, run  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build a denoising set from the photographs in scikit-image, train a compact HINT on it with '
        "BasicSR (CPU, about 9 minutes on 2 cores), and compare it with OpenCV's non-local means at sigma 25. Writes "
        'datasets/demo/, experiments/, results/demo/comparison.png and results/demo/metrics.md under --workdir.')
    parser.add_argument('--workdir', default='.', help='folder for the data and outputs (default: the current one)')
    parser.add_argument('--quick', action='store_true',
                        help='a tiny network for a few iterations: checks the pipeline in about a minute')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args.workdir, quick=args.quick)
    except DemoError as err:
        sys.exit(f'demo.py: error: {err}')


if __name__ == '__main__':
    main()
