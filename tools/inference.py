"""``python tools/inference.py -i INPUT -o OUTPUT_DIR (--opt TEST_YAML | --weights CKPT [--config NETWORK_YAML])``.

Restores image files, folders or glob patterns with HINT; see ``--help`` and :mod:`hint_plugin.inference`.
"""
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from hint_plugin.inference import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
