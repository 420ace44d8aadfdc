"""The one rule for finding the state dict inside a checkpoint, shared by the checkpoint loader
(:func:`hint_plugin.utils.checkpoint.read_state_dict`), HINT's configuration detection
(:func:`hint_plugin.utils.detection.detect_hint_config`) and the spandrel architecture (``hint_plugin.spandrel``).
"""
from collections.abc import Mapping

import torch

from hint_plugin.errors import StateDictError

PARAM_KEYS = ('params_ema', 'params')  # where BasicSR's save_network puts the weights (EMA first)
DDP_PREFIX = 'module.'  # what a DistributedDataParallel / DataParallel wrapper adds to every key


def unwrap_state_dict(checkpoint, param_key=None):
    """The bare state dict (a new ``dict`` of names to tensors) inside ``checkpoint``.

    The rule:

    1. the mapping under ``param_key`` when given and present, else under ``params_ema``, else under ``params``
       (BasicSR's ``save_network`` layouts), else ``checkpoint`` itself;
    2. every value must be a tensor;
    3. ``module.`` is removed when *every* key starts with it, as in the weights of a network saved while
       wrapped in DDP or DataParallel. When only some keys start with it, those keys name a submodule called
       ``module`` and are kept as they are (renaming them would load weights into the wrong layers).

    Raises:
        StateDictError: ``checkpoint`` is not a mapping, or the state dict found holds something else than
            tensors (the message names the first such key).
    """
    if not isinstance(checkpoint, Mapping):
        raise StateDictError(f'expected a state dict (a mapping of names to tensors), got {type(checkpoint).__name__}')
    for key in (param_key, *PARAM_KEYS):
        if key is not None and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            places = ' / '.join(f'"{place}"' for place in dict.fromkeys((param_key or PARAM_KEYS[0], *PARAM_KEYS)))
            raise StateDictError(f'expected a state dict of tensors (bare, or under {places}), but {key!r} holds a '
                                 f'{type(value).__name__} (its keys: {sorted(map(str, checkpoint))[:8]})')
    if checkpoint and all(str(key).startswith(DDP_PREFIX) for key in checkpoint):
        return {key[len(DDP_PREFIX):]: value for key, value in checkpoint.items()}
    return dict(checkpoint)
