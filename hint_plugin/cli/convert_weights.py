"""``hint-convert-weights`` (``python tools/convert_weights.py``): convert a ``.pth`` checkpoint to ``.safetensors``
with the network configuration in its metadata.

    hint-convert-weights HINT_denoise.pth HINT_denoise.safetensors
    hint-convert-weights net_g_latest.pth net.safetensors --config options/train/X.yml --param-key params

The ``.pth`` is read with ``weights_only=True`` (a file that needs pickle is refused). Without ``--config``
HINT's configuration is detected from the weights. The result loads with ``hint-infer --weights``,
with BasicSR's ``pretrain_network_g`` and with spandrel (``import hint_plugin.spandrel``).
"""
import argparse
import sys

from hint_plugin.cli import plain_text
from hint_plugin.errors import SaveError
from hint_plugin.utils.checkpoint import CheckpointError, convert_to_safetensors
from hint_plugin.utils.options import OptionsError, network_options, read_options
from hint_plugin.utils.safetensors_io import SUFFIX


def main(argv=None):
    """The command line; returns the exit status (0 written, 1 not saved, 2 refused)."""
    parser = argparse.ArgumentParser(description=plain_text(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', help='checkpoint to read (.pth, or .safetensors to rewrite its metadata)')
    parser.add_argument('target', help=f'file to write, ending in {SUFFIX}')
    parser.add_argument('--config', metavar='YAML', help='option file whose network_g goes into the metadata '
                                                         '(default: HINT, detected from the weights)')
    parser.add_argument('--param-key',
                        help='checkpoint key, which must then exist (default: params_ema, falling back to params, '
                             'then a bare state_dict)')
    args = parser.parse_args(argv)
    if not args.target.lower().endswith(SUFFIX):
        parser.error(f'the target must end in {SUFFIX}: {args.target}')
    try:
        network_opt = network_options(read_options(args.config), args.config) if args.config else None
        stored = convert_to_safetensors(args.source, args.target, network_opt, args.param_key or 'params_ema',
                                        exact_key=args.param_key is not None)
    except (CheckpointError, OptionsError) as error:
        print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
        return 2
    except SaveError as error:  # e.g. the target's folder does not exist or is read-only
        print(f'error: {" ".join(str(error).split())}', file=sys.stderr)
        return 1
    print(f'wrote {args.target} (network_g: {stored})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
