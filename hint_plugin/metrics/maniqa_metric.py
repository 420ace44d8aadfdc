"""No-reference MANIQA (Yang et al., CVPRW 2022) through pyiqa, as a BasicSR metric: ``type: calculate_maniqa``.

pyiqa is optional and not installed with hint-plugin: ``pip install pyiqa==0.1.16`` keeps torch 2.14.1 but adds
about 40 packages, among them opencv-python-headless, which shares the ``cv2`` module with the opencv-python that
BasicSR uses (the two overwrite each other's files). Install it in a separate environment, or accept that.

Weights never download here. They come from ``weights`` (a local file), else from pyiqa's cache,
``<torch hub dir>/pyiqa/<file>`` (``~/.cache/torch/hub/pyiqa``), with pyiqa 0.1.16's file names:

====================  ===========================  ===========================
``variant``           trained on                   file
====================  ===========================  ===========================
``maniqa`` (default)  KonIQ-10k                    ``ckpt_koniq10k.pt``
``maniqa-kadid``      KADID-10k                    ``ckpt_kadid10k.pt``
``maniqa-pipal``      PIPAL                        ``MANIQA_PIPAL-ae6d356b.pth``
====================  ===========================  ===========================

They are read by the plugin's one loader (``read_state_dict``: ``weights_only=True``, the state dict under
``params`` / ``params_ema`` or bare, a DDP ``module.`` prefix dropped). pyiqa
builds MANIQA's ViT-B/8 backbone with timm's ImageNet weights before these replace them, so timm's
``vit_base_patch8_224`` must be in the Hugging Face cache too when offline.

MANIQA scores random 224 x 224 crops; the crops are drawn after ``torch.manual_seed(seed)`` (option ``seed``,
default 0) in a forked RNG, so a score is reproducible and training's random state is untouched. Higher is
better. Images narrower than 224 px are refused by MANIQA itself.
"""
from os import path as osp

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from hint_plugin.utils.checkpoint import read_state_dict

MANIQA_FILES = {'maniqa': 'ckpt_koniq10k.pt', 'maniqa-kadid': 'ckpt_kadid10k.pt',
                'maniqa-pipal': 'MANIQA_PIPAL-ae6d356b.pth'}
_METRICS = {}  # (variant, weights path, device) -> pyiqa metric, built once per run


def pyiqa_cache_dir():
    """pyiqa's download folder: ``<torch.hub.get_dir()>/pyiqa``."""
    return osp.join(torch.hub.get_dir(), 'pyiqa')


def maniqa_weights_path(variant='maniqa', weights=None):
    """The checkpoint to load: ``weights`` if given, else pyiqa's cached file for ``variant``; a missing file raises
    FileNotFoundError naming it."""
    if variant not in MANIQA_FILES:
        raise ValueError(f'calculate_maniqa: variant must be one of {", ".join(MANIQA_FILES)}, got {variant!r}')
    path = osp.expanduser(weights) if weights else osp.join(pyiqa_cache_dir(), MANIQA_FILES[variant])
    if not osp.isfile(path):
        where = 'given as weights' if weights else "in pyiqa's cache"
        raise FileNotFoundError(
            f'calculate_maniqa: MANIQA weights {path} ({where}) not found. Put {MANIQA_FILES[variant]} (pyiqa\'s '
            f'{variant} checkpoint) there, or set the metric option weights: <path to it>.')
    return path


def import_pyiqa():
    """``pyiqa``, or ImportError saying how to install it."""
    try:
        import pyiqa
    except ImportError as err:
        raise ImportError('calculate_maniqa needs pyiqa, which hint-plugin does not install (it adds '
                          'opencv-python-headless beside opencv-python): pip install pyiqa==0.1.16') from err
    return pyiqa


def maniqa_model(variant, path, device):
    """pyiqa's MANIQA ``variant`` on ``device`` with the weights of ``path`` (built once, then reused)."""
    key = (variant, osp.abspath(path), str(device))
    if key not in _METRICS:
        pyiqa = import_pyiqa()
        metric = pyiqa.create_metric(variant, device=device, pretrained=False)
        metric.net.load_state_dict(read_state_dict(path), strict=True)
        metric.net.eval()
        _METRICS[key] = metric
    return _METRICS[key]


def image_to_tensor(img, channel_order='bgr'):
    """``(H, W, 3)`` image on the 0-255 scale (uint8 or float) in ``channel_order`` -> ``(1, 3, H, W)`` float32
    RGB in [0, 1] (pyiqa's input)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'calculate_maniqa: expected an (H, W, 3) colour image, got shape {img.shape}')
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' (BasicSR's tensor2img) or 'rgb', got {channel_order!r}")
    if channel_order == 'bgr':
        img = img[..., ::-1]
    rgb = np.clip(img.astype(np.float32) / 255.0, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


@METRIC_REGISTRY.register()
def calculate_maniqa(img, variant='maniqa', weights=None, device=None, channel_order='bgr', seed=0, **kwargs):
    """MANIQA score of ``img`` (no reference: a ground truth passed as ``img2`` is not read).

    Args:
        img (ndarray): ``(H, W, 3)`` on the 0-255 scale, uint8 or float, in ``channel_order``.
        variant (str): 'maniqa', 'maniqa-kadid' or 'maniqa-pipal' (module docstring).
        weights (str | None): checkpoint path; None: pyiqa's cache.
        device (str | None): where MANIQA runs; None: CUDA when available, else the CPU.
        channel_order (str): 'bgr' (BasicSR's ``tensor2img``, default) or 'rgb'.
        seed (int): seed of MANIQA's random crops.
    Returns:
        float: the score (higher is better).
    """
    if kwargs.pop('crop_border', 0) != 0:
        raise ValueError('calculate_maniqa: crop_border must be 0 (MANIQA scores the whole image)')
    unknown = sorted(set(kwargs) - {'img2', 'better'})
    if unknown:
        raise ValueError(f'calculate_maniqa: unknown option(s) {", ".join(unknown)}; it reads variant, weights, '
                         'device, channel_order and seed')
    tensor = image_to_tensor(img, channel_order)
    path = maniqa_weights_path(variant, weights)
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    metric = maniqa_model(variant, path, device)
    devices = [device] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        return float(metric(tensor.to(device)).mean().item())

