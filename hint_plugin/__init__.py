"""HINT for BasicSR: ``import hint_plugin`` registers HINT, HMHA, QKCU and the HINT model, data and losses.

Importing changes nothing else in BasicSR, except one alias without which ``import basicsr`` fails on
torchvision >= 0.17 (:func:`hint_plugin.compat.alias_functional_tensor`). The fixes for training through BasicSR's
pipeline apply in the plugin's entry points only (``tools/train.py``, ``tools/test.py``:
:func:`hint_plugin.compat.apply_training_fixes`). Without BasicSR (``import basicsr`` fails) only the torch-only
architectures are there: ``from hint_plugin.archs import HINT, HMHA, QKCU``.
"""
from hint_plugin import archs, compat

try:
    compat.alias_functional_tensor()
    import basicsr  # noqa: F401
except ImportError as error:  # the architectures alone, e.g. in another training toolbox
    if not isinstance(error, ModuleNotFoundError) or (error.name or '').split('.')[0] not in ('basicsr', 'torchvision'):
        raise  # BasicSR is there but broken: say so now, not later as an unregistered HINT
    basicsr = None

if basicsr is not None:
    archs.register_archs()
    from hint_plugin import data, losses, metrics, models  # noqa: E402,F401  (register into BasicSR's registries)

__version__ = '0.1.0'
