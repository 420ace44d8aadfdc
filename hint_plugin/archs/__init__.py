"""HINT, HMHA and QKCU: torch-only modules, importable and runnable where BasicSR is not installed.

Where BasicSR is importable they are registered in its ``ARCH_REGISTRY`` (``network_g: {type: HINT}``), the
way BasicSR registers every ``*_arch.py`` module of its own ``archs`` folder.
"""
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA
from hint_plugin.archs.qkcu_arch import QKCU

__all__ = ['HINT', 'HMHA', 'QKCU', 'register_archs']


def register_archs():
    """Register HINT, HMHA and QKCU in BasicSR's ``ARCH_REGISTRY`` (once); BasicSR must be importable."""
    from basicsr.utils.registry import ARCH_REGISTRY
    for network in (HINT, HMHA, QKCU):
        if network.__name__ not in ARCH_REGISTRY:
            ARCH_REGISTRY.register(network)
