"""Evaluate with BasicSR's own pipeline: ``python -m hint_plugin.test -opt options/test/X.yml``.

Results and logs land in the working directory's ``results/<name>/``. ``tools/test.py`` runs the same :func:`main`.
"""
import os

import hint_plugin  # noqa: F401  (registers HINT; first, since it makes `import basicsr` work on new torchvision)
from basicsr.test import test_pipeline
from hint_plugin import compat
from hint_plugin.utils.allocator import retain_freed_memory


def main():
    """BasicSR's ``test_pipeline`` with the plugin registered and :func:`compat.apply_training_fixes` applied."""
    compat.apply_training_fixes()  # CPU/gloo distributed init and LMDB sharing (the others concern training only)
    retain_freed_memory()  # large CPU feature maps reuse memory instead of page-faulting
    test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
