"""Train with BasicSR's own pipeline: ``python -m hint_plugin.train -opt options/train/X.yml [BasicSR flags]``.

Every BasicSR flag works (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``); outputs land in
the working directory's ``experiments/`` and ``tb_logger/``.
"""
import os

import hint_plugin  # noqa: F401  (compat fixes and registrations)
from basicsr.train import train_pipeline
from hint_plugin.utils.allocator import retain_freed_memory
from hint_plugin.utils.startup_checks import check_command_line, exit_on_named_errors


def main():
    check_command_line(is_train=True)  # the option file and flags, before anything is built
    retain_freed_memory()  # large CPU feature maps reuse memory instead of page-faulting
    with exit_on_named_errors('train'):  # a bad checkpoint, LMDB, image or state: its message, no traceback
        train_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
