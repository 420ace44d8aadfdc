"""Weights as ``.safetensors`` files: no pickle at all, and the network configuration in the file's metadata.

This module is the file format only (read, read the metadata, write); the loader that reads ``.pth`` and
``.safetensors`` alike and the conversion between them are in :mod:`hint_plugin.utils.checkpoint`.

The metadata (a string-to-string table in the file's header) holds ``format: pt`` and, under
:data:`NETWORK_KEY`, the JSON of BasicSR's ``network_g`` (``{"type": "HINT", "dim": 48, ...}``), so a file
says which network it fits without an option file. :func:`hint_plugin.utils.checkpoint.read_state_dict`
(and so ``load_network``, ``HINTModel.load_network`` and the inference command) reads these files by their
extension (:func:`~hint_plugin.utils.checkpoint.convert_to_safetensors` writes them); spandrel reads them too.
"""
import json
import os

from hint_plugin.errors import CheckpointError
from hint_plugin.utils.atomic import atomic_write

SUFFIX = '.safetensors'
NETWORK_KEY = 'hint_plugin.network_g'


def is_safetensors(path):
    """Whether ``path`` names a ``.safetensors`` file (by its extension, case-insensitively)."""
    return os.fspath(path).lower().endswith(SUFFIX)


def read_safetensors(path):
    """The tensors of the ``.safetensors`` file ``path`` as a state dict on the CPU.

    Raises :class:`CheckpointError` when the file is missing or is not a valid safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        return load_file(path, device='cpu')
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f'{path}: not a readable .safetensors file ({str(error).splitlines()[0]})') from None


def read_network_config(path):
    """The ``network_g`` stored in the metadata of the ``.safetensors`` file ``path``, or None without one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework='pt') as file:
            metadata = file.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f'{path}: not a readable .safetensors file ({str(error).splitlines()[0]})') from None
    if NETWORK_KEY not in metadata:
        return None
    try:
        network = json.loads(metadata[NETWORK_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f'{path}: the metadata {NETWORK_KEY!r} is not JSON ({error})') from None
    if not isinstance(network, dict) or not network.get('type'):
        raise CheckpointError(f'{path}: the metadata {NETWORK_KEY!r} is not a network_g with a type: {network!r}')
    return network


def save_safetensors(state_dict, path, network_opt=None):
    """Write ``state_dict`` to ``path`` as safetensors, with ``network_opt`` (a ``network_g``) in the metadata.

    Tensors are stored contiguous and on the CPU. The file is written to ``<path>.tmp`` and renamed, so an
    interrupted save never leaves a truncated ``path``.
    """
    from safetensors.torch import save

    if not is_safetensors(path):
        raise ValueError(f'{path}: a safetensors file must end in {SUFFIX}')
    metadata = {'format': 'pt'}
    if network_opt is not None:
        if not isinstance(network_opt, dict) or not network_opt.get('type'):
            raise ValueError(f'network_opt must be a network_g dict with a type, got {network_opt!r}')
        metadata[NETWORK_KEY] = json.dumps(network_opt, sort_keys=True)
    tensors = {name: value.detach().to('cpu').contiguous() for name, value in state_dict.items()}
    payload = save(tensors, metadata=metadata)
    atomic_write(path, lambda file: file.write(payload))
