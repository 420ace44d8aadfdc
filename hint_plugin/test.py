"""Evaluate with BasicSR's own pipeline: ``python -m hint_plugin.test -opt options/test/X.yml``.

Results and logs land in the working directory's ``results/<name>/``.
"""
import os

import hint_plugin  # noqa: F401  (compat fixes and registrations)
from basicsr.test import test_pipeline
from hint_plugin.utils.allocator import retain_freed_memory
from hint_plugin.utils.startup_checks import check_command_line, exit_on_named_errors


def main():
    check_command_line(is_train=False)  # the option file and flags, before anything is built
    retain_freed_memory()  # large CPU feature maps reuse memory instead of page-faulting
    with exit_on_named_errors('test'):  # a bad checkpoint, LMDB, image or state: its message, no traceback
        test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
