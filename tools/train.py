"""``python tools/train.py -opt options/train/X.yml [BasicSR flags]``: BasicSR's train pipeline with HINT.

Every BasicSR flag works (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``); outputs land in the
working directory's ``experiments/`` and ``tb_logger/``. The plugin's fixes and checks come first
(:mod:`tools.entry`).
"""
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from tools.entry import run_pipeline  # noqa: E402  (imports the plugin before BasicSR)
from basicsr.train import train_pipeline  # noqa: E402


def main():
    run_pipeline(train_pipeline, is_train=True)


if __name__ == '__main__':
    main()
