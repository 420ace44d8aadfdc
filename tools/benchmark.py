"""Time HINT's training steps and inference, with peak memory; prints a Markdown table, writes JSON.

    python tools/benchmark.py                                   # default HINT: train 128x128, infer 256x256
    python tools/benchmark.py --mode train --train-size 384 384 --use-checkpoint
    python tools/benchmark.py --device cuda --dtype bf16 --compile --json gpu.json
    python tools/benchmark.py --revision 7b31ea6 --system-malloc   # the first, reference-structured port

With ``--revision``, the network is that git revision's HINT (exported to a temporary folder), timed by this
version's code: two implementations compared on the same machine.
"""
import argparse
import json
import sys
import tempfile
from os import path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

from hint_plugin.benchmark import DTYPES, benchmark, export_revision, profile_lines, table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--opt', help='a YAML whose network_g describes the network (default: HINT defaults)')
    parser.add_argument('--variant', choices=['official', 'refined'])
    parser.add_argument('--mode', nargs='+', choices=['train', 'infer'], default=['train', 'infer'])
    parser.add_argument('--train-size', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'))
    parser.add_argument('--infer-size', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    parser.add_argument('--use-checkpoint', action='store_true', help='activation checkpointing (training)')
    parser.add_argument('--no-channels-last', action='store_true', help='keep features in NCHW memory')
    parser.add_argument('--compile', action='store_true', help='torch.compile the network')
    parser.add_argument('--system-malloc', action='store_true',
                        help='glibc\'s default allocation (freed large blocks go back to the system; see '
                        'hint_plugin/utils/allocator.py)')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: PyTorch\'s)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='profile one more step and list the N operators that took the most time')
    parser.add_argument('--revision', help='measure the HINT of this git revision of the repository instead of '
                        'the working tree (e.g. 7b31ea6, the first port, which keeps the reference\'s structure)')
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args(argv)
    if not args.revision:
        return run(args, None, None)
    with tempfile.TemporaryDirectory(prefix='hint-revision-') as source:
        try:
            revision = export_revision(args.revision, source, REPO)
        except ValueError as error:
            parser.error(str(error))
        return run(args, source, revision)


def run(args, source, revision):
    """Measure, print the table (and profiles), write the JSON; ``source`` holds ``revision``'s files or is None."""
    specs = [
        dict(mode=mode, size=args.train_size if mode == 'train' else args.infer_size, batch=args.batch,
             device=args.device, dtype=args.dtype, warmup=args.warmup, repeat=args.repeat,
             opt=osp.abspath(args.opt) if args.opt else None,
             variant=args.variant, use_checkpoint=args.use_checkpoint or None,
             channels_last=False if args.no_channels_last else None, compile=args.compile, threads=args.threads,
             profile=args.profile, system_malloc=args.system_malloc, source=source, revision=revision)
        for mode in args.mode
    ]
    results = benchmark(specs)
    print(table(results))
    for result in results:
        if result.get('profile'):
            print('\n' + '\n'.join(profile_lines(result)))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
