"""Auto-import every ``*_arch.py`` here so its classes register in BasicSR's ``ARCH_REGISTRY``."""
import importlib
from os import path as osp

from basicsr.utils import scandir

_arch_folder = osp.dirname(osp.abspath(__file__))
_arch_names = sorted(osp.splitext(name)[0] for name in scandir(_arch_folder) if name.endswith('_arch.py'))
_arch_modules = [importlib.import_module(f'hint_plugin.archs.{name}') for name in _arch_names]
