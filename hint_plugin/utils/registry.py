"""BasicSR's registration pattern: import every module of a folder whose file name ends with a suffix."""
import importlib
from os import path as osp

from basicsr.utils import scandir


def import_modules_ending_with(package, folder, suffix):
    """Import ``package.<name>`` for every ``<name><suffix>`` file in ``folder``; returns the modules.

    Importing runs their ``@XXX_REGISTRY.register()`` decorators, the way ``basicsr.archs`` finds
    ``*_arch.py`` files.
    """
    names = sorted(osp.splitext(name)[0] for name in scandir(folder) if name.endswith(suffix))
    return [importlib.import_module(f'{package}.{name}') for name in names]
