"""``python tools/convert_weights.py SOURCE.pth TARGET.safetensors [--config YAML] [--param-key KEY]``.

Converts a ``.pth`` checkpoint to ``.safetensors`` with the network configuration in its metadata.

Installed as ``hint-convert-weights`` too; the command line is :mod:`hint_plugin.cli.convert_weights`.
"""
import sys

from hint_plugin.cli.convert_weights import main

if __name__ == '__main__':
    sys.exit(main())
