"""HINT for BasicSR: ``import hint_plugin`` registers HINT, HMHA, QKCU and the HINT model, data and losses."""
from hint_plugin import compat

compat.alias_functional_tensor()

from hint_plugin import archs  # noqa: E402,F401  (registers into BasicSR's registries)

__version__ = '0.1.0'
