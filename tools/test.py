"""``python tools/test.py -opt options/test/X.yml``: BasicSR's test pipeline with HINT.

Results and logs land in the working directory's ``results/<name>/``. The plugin's fixes and checks come first
(:mod:`tools.entry`).
"""
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from tools.entry import run_pipeline  # noqa: E402  (imports the plugin before BasicSR)
from basicsr.test import test_pipeline  # noqa: E402


def main():
    run_pipeline(test_pipeline, is_train=False)


if __name__ == '__main__':
    main()
