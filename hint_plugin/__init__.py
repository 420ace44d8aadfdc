"""HINT for BasicSR: ``import hint_plugin`` registers HINT, HMHA, QKCU and the HINT model, data and losses.

It first applies the few outside fixes BasicSR 1.4.2 needs on today's stack (:mod:`hint_plugin.compat`).
"""
from hint_plugin import compat

compat.apply_all()

from hint_plugin import archs, data, losses, metrics, models  # noqa: E402,F401  (register into BasicSR's registries)

__version__ = '0.1.0'
