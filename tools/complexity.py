"""``python tools/complexity.py [--opt options/train/X.yml] [--size H W] [--depth N]``.

Parameters and MACs of HINT (or any registered network) with mmengine's analysis.

Installed as ``hint-complexity`` too; the command line is :mod:`hint_plugin.cli.complexity`.
"""
import sys

from hint_plugin.cli.complexity import main

if __name__ == '__main__':
    sys.exit(main())
