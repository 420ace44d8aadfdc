"""``hint-create-lmdb --layout NAME --input ROOT --output DIR``: a dataset as shipped -> BasicSR LMDBs.
``hint-create-lmdb --verify PATH [PATH ...]``: read and decode every key of existing LMDBs.

In a checkout also ``python tools/create_lmdb.py``. The work is done by :mod:`hint_plugin.data.lmdb_layouts`;
this module only parses the command line.
"""
import argparse
import sys

from hint_plugin.data.lmdb_layouts import (
    KEY_SOURCES, LAYOUTS, configure_layout, create_lmdbs)
from hint_plugin.data.lmdb_check import LmdbError, verify_lmdb
from hint_plugin.errors import DataError, OptionsError, check_plain_name


def parse_args(argv=None):
    layouts = '\n'.join(f'  {name:<16} {layout.help}' for name, layout in LAYOUTS.items())
    parser = argparse.ArgumentParser(
        description='Write a restoration dataset as OUTPUT/lq.lmdb + OUTPUT/gt.lmdb with identical keys\n'
        "(for BasicSR's PairedImageDataset with io_backend lmdb), or as one LMDB of clean images.",
        epilog=f'layouts (folders relative to --input):\n{layouts}\n\n'
        'Patterns full-match the file stem; images they do not fit are skipped and reported.\n'
        "Dots in keys become 'p' (BasicSR cuts keys at the first dot).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--layout', choices=list(LAYOUTS), help='how the dataset is organised')
    parser.add_argument('--input', metavar='ROOT', help='the dataset folder')
    parser.add_argument('--output', metavar='DIR', help='folder for the LMDBs')
    parser.add_argument('--lq-dir', help="lq folder instead of the layout's (relative to ROOT)")
    parser.add_argument('--gt-dir', help="gt folder instead of the layout's (relative to ROOT)")
    parser.add_argument('--lq-pattern', metavar='REGEX', help='lq file stems, with a group (?P<id>...)')
    parser.add_argument('--gt-pattern', metavar='REGEX', help='gt file stems, with a group (?P<id>...)')
    parser.add_argument('--key', choices=KEY_SOURCES, help="LMDB key: the lq file stem or the pairing id "
                        "(default: the layout's)")
    parser.add_argument('--name', help='LMDB name for the single layout (default: gt)')
    parser.add_argument('--compress-level', type=int, default=1, choices=range(10), metavar='0-9',
                        help='PNG compression of the stored images (default: 1)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing LMDBs')
    parser.add_argument('--verify', nargs='+', metavar='PATH', help='instead of writing: read and decode every key '
                        'of these LMDBs, and check the keys of their meta_info.txt')
    args = parser.parse_args(argv)
    if not args.verify and not (args.layout and args.input and args.output):
        parser.error('--layout, --input and --output are required (or --verify PATH)')
    if args.name is not None:
        try:
            check_plain_name(args.name, '--name')  # OUTPUT/<name>.lmdb stays inside --output
        except OptionsError as error:
            parser.error(str(error))
    return args


def verify(paths):
    """Exit status 0 when every LMDB of ``paths`` reads and decodes key by key, else 1 (each problem printed)."""
    status = 0
    for path in paths:
        try:
            print(f'{path}: {verify_lmdb(path)} keys read and decoded')
        except LmdbError as err:
            print(f'create_lmdb.py: error: {err}', file=sys.stderr)
            status = 1
    return status


def main(argv=None):
    args = parse_args(argv)
    if args.verify:
        sys.exit(verify(args.verify))
    try:
        layout = configure_layout(args.layout, args.lq_dir, args.gt_dir, args.lq_pattern, args.gt_pattern, args.key)
        summary = create_lmdbs(args.input, args.output, layout, args.overwrite, args.name, args.compress_level)
    except DataError as err:
        sys.exit(f'create_lmdb.py: error: {err}')
    print(summary)


if __name__ == '__main__':
    main()
