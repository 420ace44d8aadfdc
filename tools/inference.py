"""``python tools/inference.py -i INPUT -o OUTPUT_DIR (--opt TEST_YAML | --weights CKPT [--config NETWORK_YAML])``.

Restores image files, folders or glob patterns with HINT. Exit status: 0 all restored, 1 some images failed,
2 bad arguments, options or checkpoint.

Installed as ``hint-infer`` too; the command line is :mod:`hint_plugin.cli.inference`.
"""
import sys

from hint_plugin.cli.inference import main

if __name__ == '__main__':
    sys.exit(main())
