"""``hint-complexity`` (``python tools/complexity.py``): parameters and MACs of HINT (or any registered
network) with mmengine's analysis.

    hint-complexity                              # default HINT at 256x256
    hint-complexity --opt options/train/X.yml --size 128 128 --depth 3
"""
import argparse

from hint_plugin.cli import plain_text
from hint_plugin.utils.options import OptionsError, network_from_options


def main(argv=None):
    parser = argparse.ArgumentParser(description=plain_text(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--opt', help='a YAML whose network_g describes the network (default: HINT defaults)')
    parser.add_argument('--variant', choices=['official', 'refined'], help='override network_g.variant')
    parser.add_argument('--size', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'))
    parser.add_argument('--depth', type=int, default=2, help='module depth of the per-module table')
    args = parser.parse_args(argv)
    try:
        from hint_plugin.complexity import analyze, summary
    except ImportError as error:  # mmengine, of the [complexity] extra, not installed
        parser.error(str(error))
    try:
        net = network_from_options(args.opt, variant=args.variant)
    except OptionsError as error:
        parser.error(str(error))
    result = analyze(net, *args.size, max_depth=args.depth)
    print(result['table'])
    print(summary(result, *args.size))


if __name__ == '__main__':
    main()
