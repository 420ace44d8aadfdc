"""``hint-export-onnx --output hint.onnx (--opt TEST_YAML | --weights CKPT [--config NETWORK_YAML])``.

Exports HINT to ONNX with dynamic height and width and checks it against PyTorch with onnxruntime (``--check H W``,
repeatable); in a checkout also ``python tools/export_onnx.py``. Needs the ``[export]`` extra; the work is done
by :mod:`hint_plugin.export` (opset and limits there). Exit status: 0 exported and matching, 1 exported but not
matching PyTorch, 2 bad arguments, options, checkpoint or missing packages.
"""
import argparse
import sys

from hint_plugin.errors import ExportError, HINTError
from hint_plugin.export import (
    DEFAULT_CHECK_SIZES, DEFAULT_EXAMPLE_SIZE, DEFAULT_EXPORTER, DEFAULT_OPSET, DEFAULT_TOLERANCE, EXPORTERS, OPSETS,
    check_onnx, export_onnx, input_channels, require)
from hint_plugin.inference import load_network, resolve_setup
from hint_plugin.utils.validation import check_probe_output
from hint_plugin.cli.inference import add_network_arguments

EXIT_OK, EXIT_MISMATCH, EXIT_SETUP = 0, 1, 2


def tolerance(text):
    """An argparse ``type`` for ``--atol``: a number >= 0 (a negative tolerance no export could meet)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f'must be a number >= 0, got {text}')
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        description='Export HINT (or another BasicSR network) to ONNX with dynamic height and width, then check '
                    'it against PyTorch with onnxruntime. Needs the [export] extra (onnx, onnxruntime, onnxscript).',
        epilog=f'The batch is fixed at export (--batch); float32; opset {DEFAULT_OPSET} by default. Exit status: '
               '0 exported and matching, 1 exported but not matching PyTorch, 2 bad arguments, options, '
               'checkpoint or missing packages. Example: tools/export_onnx.py --opt '
               'options/test/HINT_GaussianColorDenoising_Blind.yml --output hint.onnx --check 37 45 --check 64 80')
    add_network_arguments(parser)
    parser.add_argument('--output', '-o', required=True, metavar='ONNX', help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset (default {DEFAULT_OPSET}; dynamo {OPSETS["dynamo"][0]}-'
                             f'{OPSETS["dynamo"][1]}, torchscript {OPSETS["torchscript"][0]}-'
                             f'{OPSETS["torchscript"][1]})')
    parser.add_argument('--exporter', choices=EXPORTERS, default=DEFAULT_EXPORTER,
                        help='torch.onnx exporter: dynamo (default, torch.export) or torchscript (legacy; faster '
                             'for small networks, much slower for the released size)')
    parser.add_argument('--batch', type=int, default=1, help='batch size of the exported model (default 1)')
    parser.add_argument('--example-size', type=int, nargs=2, default=list(DEFAULT_EXAMPLE_SIZE), metavar=('H', 'W'),
                        help='size of the example image the exporter traces (default %s %s; the model takes any '
                             'size)' % DEFAULT_EXAMPLE_SIZE)
    parser.add_argument('--check', type=int, nargs=2, action='append', metavar=('H', 'W'),
                        help='compare onnxruntime with PyTorch on a random H x W image; repeatable (default: '
                             + ', '.join(f'{h} {w}' for h, w in DEFAULT_CHECK_SIZES) + ')')
    parser.add_argument('--no-check', action='store_true', help='export only, without the onnxruntime comparison')
    parser.add_argument('--atol', type=tolerance, default=DEFAULT_TOLERANCE,
                        help=f'largest allowed absolute difference (default {DEFAULT_TOLERANCE:g})')
    return parser


def main(argv=None):
    """The command line; returns the exit status (0 exported and matching, 1 mismatch, 2 set-up error)."""
    args = build_parser().parse_args(argv)
    try:
        for name in ('onnx', 'onnxruntime') + (('onnxscript', ) if args.exporter == 'dynamo' else ()):
            require(name)
        setup = resolve_setup(args.opt, args.weights, args.config, args.param_key)
        net = load_network(setup.network_opt, setup.weights, setup.param_key, setup.strict, device='cpu',
                           exact_key=setup.exact_key)
        check_probe_output(net, input_channels(net), setup.weights or 'the network')  # huge weights: nothing written
        print(f'exporting {type(net).__name__} with the {args.exporter} exporter (a minute for small networks, '
              'several for the released size) ...', file=sys.stderr, flush=True)
        export_onnx(net, args.output, args.opset, tuple(args.example_size), args.batch, args.exporter)
    except HINTError as error:
        print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
        return EXIT_SETUP
    print(f'exported {args.output} (opset {args.opset}, {args.exporter} exporter, input '
          f'({args.batch}, {input_channels(net)}, height, width) float32)')
    if args.no_check:
        return EXIT_OK
    try:
        results = check_onnx(args.output, net, args.check or DEFAULT_CHECK_SIZES, atol=args.atol)
    except ExportError as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_MISMATCH
    print('onnxruntime matches PyTorch: ' + ', '.join(f'{h}x{w} max |difference| {difference:.2g}'
                                                        for (h, w), difference in results))
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
