"""``python tools/train.py -opt options/train/X.yml [BasicSR flags]``: BasicSR's train pipeline with HINT.

Every BasicSR flag works (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``); outputs land in the
working directory's ``experiments/`` and ``tb_logger/``. The same command is installed as ``hint-train``; the
plugin's fixes and checks come first (:mod:`hint_plugin.cli.pipeline`).
"""
from hint_plugin.cli.pipeline import train_main

if __name__ == '__main__':
    train_main()
