"""HINT, HMHA, QKCU: torch only (no BasicSR needed); ``register_archs`` adds them to ``ARCH_REGISTRY``."""
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA
from hint_plugin.archs.qkcu_arch import QKCU

__all__ = ['HINT', 'HMHA', 'QKCU', 'register_archs']


def register_archs():
    """Register the three in BasicSR's ``ARCH_REGISTRY`` once."""
    from basicsr.utils.registry import ARCH_REGISTRY
    for network in (HINT, HMHA, QKCU):
        if network.__name__ not in ARCH_REGISTRY:
            ARCH_REGISTRY.register(network)
