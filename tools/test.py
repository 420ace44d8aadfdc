"""``python tools/test.py -opt options/test/X.yml``: BasicSR's test pipeline with the HINT plugin loaded."""
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from hint_plugin.test import main  # noqa: E402

if __name__ == '__main__':
    main()
