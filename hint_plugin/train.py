"""Train with BasicSR's own pipeline: ``python -m hint_plugin.train -opt options/train/X.yml [BasicSR flags]``.

Every BasicSR flag works (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``); outputs land in
the working directory's ``experiments/`` and ``tb_logger/``. ``tools/train.py`` runs the same :func:`main`.
"""
import os

import hint_plugin  # noqa: F401  (registers HINT; first, since it makes `import basicsr` work on new torchvision)
from basicsr.train import train_pipeline
from hint_plugin import compat
from hint_plugin.utils.allocator import retain_freed_memory


def main():
    """BasicSR's ``train_pipeline`` with the plugin registered and :func:`compat.apply_training_fixes` applied."""
    compat.apply_training_fixes()  # CPU/gloo distributed init, CPU resume, exact data order on resume, LMDB sharing
    retain_freed_memory()  # large CPU feature maps reuse memory instead of page-faulting
    train_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
