"""HINT for BasicSR: ``import hint_plugin`` registers HINT, HMHA, QKCU and the HINT model, data and losses.

It first applies the few outside fixes BasicSR 1.4.2 needs on today's stack (:mod:`hint_plugin.compat`).
Without BasicSR (``import basicsr`` fails) only the torch-only architectures are there:
``from hint_plugin.archs import HINT, HMHA, QKCU``.
"""
from hint_plugin import archs, compat

try:
    compat.alias_functional_tensor()  # without it `import basicsr` fails on torchvision >= 0.17
    import basicsr  # noqa: F401
except ImportError:  # the architectures alone, e.g. in another training toolbox
    basicsr = None

if basicsr is not None:
    compat.apply_all()
    archs.register_archs()
    from hint_plugin import data, losses, models  # noqa: E402,F401  (register into BasicSR's registries)

__version__ = '0.1.0'
