"""The one checkpoint loader: ``weights_only=True``, BasicSR's layouts, and readable errors."""
import os
from collections.abc import Mapping

import torch

PARAM_KEYS = ('params_ema', 'params')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read safely or does not fit the network."""


def read_state_dict(path, param_key='params'):
    """The state_dict stored in ``path``.

    Accepts BasicSR's ``{'params': ...}`` / ``{'params_ema': ...}`` (``param_key`` first, then the other one)
    and a bare state_dict; strips a DDP ``module.`` prefix. Loads with ``weights_only=True``, so a file that
    would run code when unpickled is refused.
    """
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f'checkpoint not found: {path}') from None
    except Exception as error:  # pickle.UnpicklingError and friends: the file is not plain weights
        raise CheckpointError(f'{path}: refused to load, it is not a plain weights file '
                              f'(torch.load with weights_only=True said: {str(error).splitlines()[0]})') from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{path}: expected a state_dict or a dict with "params"/"params_ema", '
                              f'got {type(checkpoint).__name__}')
    for key in (param_key, *PARAM_KEYS):
        if key is not None and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if not all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        raise CheckpointError(f'{path}: no state_dict found under {param_key!r}, "params" or "params_ema" '
                              f'(top-level keys: {sorted(checkpoint)[:8]})')
    return {key.removeprefix('module.'): value for key, value in checkpoint.items()}


def describe_mismatch(expected, found, limit=5):
    """One readable paragraph on the difference between two state_dicts (key names and shapes)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    resized = sorted(key for key in set(expected) & set(found) if expected[key].shape != found[key].shape)
    parts = []
    for label, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            parts.append(f'{len(keys)} {label} keys (e.g. {", ".join(keys[:limit])})')
    if resized:
        examples = ', '.join(f'{key}: {tuple(found[key].shape)} vs {tuple(expected[key].shape)}'
                             for key in resized[:limit])
        parts.append(f'{len(resized)} keys of another shape (checkpoint vs network: {examples})')
    return '; '.join(parts)


def load_weights(net, path, param_key='params', strict=True):
    """Load ``path`` into ``net``; a checkpoint of another architecture gets one clear ``CheckpointError``."""
    state = read_state_dict(path, param_key)
    expected = net.state_dict()
    mismatch = describe_mismatch(expected, state)
    if mismatch and (strict or any(expected[k].shape != v.shape for k, v in state.items() if k in expected)):
        raise CheckpointError(f'{path} does not fit {type(net).__name__}: {mismatch}')
    net.load_state_dict(state, strict=strict)
    return mismatch


def atomic_save(obj, path):
    """``torch.save`` to a temporary file, then rename: a kill during the save leaves the old file intact."""
    temporary = f'{path}.tmp'
    torch.save(obj, temporary)
    os.replace(temporary, path)
