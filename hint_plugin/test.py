"""Evaluate with BasicSR's own pipeline: ``python -m hint_plugin.test -opt options/test/X.yml``.

Results and logs land in the working directory's ``results/<name>/``.
"""
import os

import hint_plugin  # noqa: F401  (compat fixes and registrations)
from basicsr.test import test_pipeline


def main():
    test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
