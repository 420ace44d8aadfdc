"""Auto-import every ``*_dataset.py`` here so its classes register in BasicSR's ``DATASET_REGISTRY``."""
from os import path as osp

from hint_plugin.utils.registry import import_modules_ending_with

_modules = import_modules_ending_with(__name__, osp.dirname(osp.abspath(__file__)), '_dataset.py')
