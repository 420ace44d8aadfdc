"""The outside fixes BasicSR 1.4.2 needs on today's PyTorch stack, each a small named function.

Nothing in site-packages is edited: the fixes alias modules or wrap functions at import time of
``hint_plugin``.
"""
import importlib
import sys


def alias_functional_tensor():
    """BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor``, removed in torchvision 0.17.

    Its only use there is ``rgb_to_grayscale``, which ``torchvision.transforms.functional`` still provides,
    so that module stands in for the removed one (only when the real one is missing).
    """
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = importlib.import_module('torchvision.transforms.functional')
