"""Which implementation of Adam/AdamW a training run gets when its options do not say.

PyTorch's fused Adam/AdamW (one kernel over all parameters, on CPU and CUDA) steps exactly as the per-parameter
loop does, to float32 rounding (``tests/models/test_fused_optimizer.py``), and faster: on the project's 2-core
CPU one AdamW step over HINT's 24.9 M parameters took 17 ms fused against 55 ms for the loop (PyTorch's CPU
default) and 64 ms for ``foreach`` (``studies/speed_devices.py``). So ``HINTModel`` asks for ``fused: true`` unless ``optim_g`` names
``fused`` or ``foreach`` itself (``fused: false`` keeps the loop).
"""
import torch

FUSED_BY_DEFAULT = ('Adam', 'AdamW')
FUSED_DEVICES = ('cpu', 'cuda')


def optimizer_keywords(optim_type, params, keywords):
    """``keywords`` for ``torch.optim.<optim_type>(params, ...)``, with ``fused=True`` added where it applies:
    Adam/AdamW, neither ``fused`` nor ``foreach`` given, every parameter a floating-point tensor on CPU or CUDA."""
    keywords = dict(keywords)
    if optim_type not in FUSED_BY_DEFAULT or 'fused' in keywords or 'foreach' in keywords:
        return keywords
    tensors = [p for group in params for p in (group['params'] if isinstance(group, dict) else [group])]
    if tensors and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in tensors):
        keywords['fused'] = True
    return keywords


def build_optimizer(optim_type, params, lr, **keywords):
    """``torch.optim.<optim_type>`` with :func:`optimizer_keywords`' choice of implementation."""
    params = list(params)
    return getattr(torch.optim, optim_type)(params, lr, **optimizer_keywords(optim_type, params, keywords))
