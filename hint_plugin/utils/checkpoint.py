"""The one checkpoint loader (``weights_only=True``, BasicSR's layouts, readable errors), atomic saving,
conversion to ``.safetensors``, and random states in a form that ``weights_only`` loading accepts."""
import os
import random
from collections.abc import Mapping

import numpy as np
import torch

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.errors import CheckpointError, NonFiniteError, StateDictError
from hint_plugin.utils.atomic import atomic_write
from hint_plugin.utils.detection import detect_hint_config, hint_network_options
from hint_plugin.utils.messages import listing
from hint_plugin.utils.safetensors_io import is_safetensors, read_safetensors, save_safetensors
from hint_plugin.utils.state_dict import unwrap_state_dict
from hint_plugin.utils.validation import check_probe_output


def read_state_dict(path, param_key='params', exact_key=False):
    """The state_dict stored in ``path``.

    Accepts BasicSR's ``{'params': ...}`` / ``{'params_ema': ...}`` (``param_key`` first, then ``params_ema``,
    then ``params``; with ``exact_key``, for a ``param_key`` the user named explicitly, only that one: its
    absence is an error naming the keys present) and a bare state_dict, without a DDP ``module.`` prefix shared
    by every key (:func:`hint_plugin.utils.state_dict.unwrap_state_dict`, the rule detection and spandrel use
    too). Loads with ``weights_only=True``, so a file that would run code when unpickled is refused, and so are
    weights holding a NaN or an infinity (naming the file and the first such tensor): every loading path
    (pretraining, testing, inference, export, spandrel) comes through here. A ``.safetensors`` file is read as
    such (no pickle at all); an empty file is named as such.
    """
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise CheckpointError(f'{path}: the file is empty (0 bytes), not weights (an interrupted download or copy?)')
    if is_safetensors(path):
        checkpoint = read_safetensors(path)
    else:
        try:
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f'checkpoint not found: {path}') from None
        except Exception as error:  # pickle.UnpicklingError and friends: the file is not plain weights
            raise CheckpointError(f'{path}: refused to load, it is not a plain weights file '
                                  f'(torch.load with weights_only=True said: {_first_line(error)})') from None
    if exact_key:
        check_param_key(path, checkpoint, param_key)
    try:
        state = unwrap_state_dict(checkpoint, param_key)
    except StateDictError as error:
        raise CheckpointError(f'{path}: {error}') from None
    check_finite_weights(path, state)
    return state


def _first_line(error):
    return (str(error).strip() or type(error).__name__).splitlines()[0]


def check_param_key(path, checkpoint, param_key):
    """Raise :class:`CheckpointError` unless ``checkpoint`` (read from ``path``) holds weights under
    ``param_key``, naming the keys that do hold weights (or saying it is a bare state_dict)."""
    if not isinstance(checkpoint, Mapping) or isinstance(checkpoint.get(param_key), Mapping):
        return
    if all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        where = 'it is a bare state_dict with no such key: leave the key out'
    else:
        present = sorted(key for key, value in checkpoint.items() if isinstance(value, Mapping))
        where = f'the keys holding weights are {present}' if present else 'no key holds weights'
    raise CheckpointError(f'{path}: no weights under the key {param_key!r} asked for ({where})')


def check_finite_weights(source, state):
    """Raise :class:`CheckpointError` naming ``source`` and the tensor when ``state`` holds a NaN or an infinity."""
    bad = first_nonfinite(state)
    if bad is not None:
        raise CheckpointError(f'{source}: tensor {bad!r} holds NaN or infinite values; refusing to load these weights '
                              '(a diverged training saved them? take an earlier checkpoint)')


def describe_mismatch(expected, found, limit=5):
    """One readable paragraph on the difference between two state_dicts (key names and shapes)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    resized = sorted(key for key in set(expected) & set(found) if expected[key].shape != found[key].shape)
    parts = []
    for label, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            parts.append(listing(keys, f'{label} key', limit))
    if resized:
        examples = ', '.join(f'{key}: {tuple(found[key].shape)} vs {tuple(expected[key].shape)}'
                             for key in resized[:limit])
        parts.append(f'{len(resized)} keys of another shape (checkpoint vs network: {examples})')
    return '; '.join(parts)


def check_fit(source, expected, state, strict=True, network='the network', advice=True):
    """Check that ``state`` loads into a network whose state_dict is ``expected``; returns the mismatch (``''``
    when none, else what :func:`describe_mismatch` says, only possible when not ``strict``).

    Raises :class:`CheckpointError` naming ``source`` when keys differ (with ``strict``) or shapes differ, and
    when a tensor is not floating point where the network's is (integer weights would be cast silently into
    garbage): the message names the key, the type found and the type expected. With ``advice``, a mismatch
    message ends with what the weights are (:func:`what_the_weights_are`).
    """
    mismatch = describe_mismatch(expected, state)
    if mismatch and (strict or any(expected[k].shape != v.shape for k, v in state.items() if k in expected)):
        raise CheckpointError(f'{source} does not fit {network}: {mismatch}.'
                              + (f' {what_the_weights_are(state)}' if advice else ''))
    not_floating = [key for key, value in state.items()
                    if key in expected and expected[key].is_floating_point() and not value.is_floating_point()]
    if not_floating:
        key = not_floating[0]
        raise CheckpointError(f'{source}: tensor {key!r} holds {state[key].dtype} values where {network} has '
                              f'{expected[key].dtype} weights ({len(not_floating)} such tensor(s)); refusing to '
                              'load weights that are not floating point')
    return mismatch


def load_weights(net, path, param_key='params', strict=True, exact_key=False):
    """Load ``path`` into ``net`` (see :func:`read_state_dict` and :func:`check_fit`); a checkpoint of another
    architecture, or with integer weights, gets one clear ``CheckpointError``."""
    state = read_state_dict(path, param_key, exact_key)
    mismatch = check_fit(path, net.state_dict(), state, strict, type(net).__name__)
    net.load_state_dict(state, strict=strict)
    return mismatch


def hint_mismatch(config, state):
    """What keeps ``state`` from loading into ``HINT(**config)`` (:func:`describe_mismatch`), ``''`` if nothing;
    the network is built on the meta device, without memory."""
    with torch.device('meta'):
        expected = HINT(**config).state_dict()
    return describe_mismatch(expected, state)


def what_the_weights_are(state):
    """One sentence for a mismatch message: the HINT configuration detected from ``state`` (when the weights fit
    it), that the weights fit no HINT (HINT's layout, but shapes no configuration gives), or that they are not
    HINT's."""
    try:
        config = detect_hint_config(state)
    except StateDictError:
        return 'These weights are not HINT\'s: give the network_g they were trained with.'
    shown = ', '.join(f'{key}: {list(value) if isinstance(value, tuple) else value}' for key, value in config.items())
    inconsistent = hint_mismatch(config, state)
    if inconsistent:
        return (f'These weights fit no HINT configuration: the one their tensor shapes suggest ({shown}) still '
                f'differs ({inconsistent}); the file is damaged or of a modified network.')
    return f'These weights are a HINT with {shown}: set network_g (or --config) to it.'


def atomic_save(obj, path):
    """``torch.save`` to ``<path>.tmp``, flushed to disk, then renamed over ``path``.

    A kill during the save leaves the previous ``path`` intact (and at most a ``.tmp`` file, a name BasicSR's
    ``*.state`` / ``*.pth`` look-ups never match); an exception during the save also removes the ``.tmp`` file.
    """
    atomic_write(path, lambda file: torch.save(obj, file))


def convert_to_safetensors(source, target, network_opt=None, param_key='params_ema', exact_key=False):
    """Convert the checkpoint ``source`` (``.pth`` read with ``weights_only=True``) to ``target`` (safetensors).

    ``network_opt`` (a ``network_g``) goes into the metadata; without it, HINT's configuration is detected
    from the weights (:func:`hint_plugin.utils.detection.detect_hint_config`). For a HINT ``network_opt``
    the weights must fit it exactly (:func:`check_fit`, on a network built without memory, on the meta device)
    and restore a probe image to finite values (:func:`~hint_plugin.utils.validation.check_probe_output`).
    ``param_key`` and ``exact_key`` as in :func:`read_state_dict`. Returns the ``network_g`` stored.
    """
    state = read_state_dict(source, param_key, exact_key)
    if network_opt is None:
        try:
            network_opt = hint_network_options(state)
        except StateDictError as error:
            raise CheckpointError(f'{source}: {error}; give the network_g of another network explicitly') from None
    if network_opt.get('type') == 'HINT':
        kwargs = {key: value for key, value in network_opt.items() if key != 'type'}
        with torch.device('meta'):
            expected = HINT(**kwargs).state_dict()
        check_fit(source, expected, state, network=f'the network_g {network_opt}')
        net = HINT(**kwargs)
        net.load_state_dict(state)
        try:
            check_probe_output(net, kwargs.get('inp_channels', 3), source)
        except NonFiniteError as error:
            raise CheckpointError(f'{error}; not converted') from None
    save_safetensors(state, target, network_opt)
    return network_opt


def first_nonfinite(state_dict):
    """Name of the first floating-point tensor of ``state_dict`` holding a NaN or an infinity, else ``None``."""
    for name, value in state_dict.items():
        if torch.is_floating_point(value) and not torch.isfinite(value).all():
            return name
    return None


# ------------------------------------------------------------------------------------------- random states
# Stored as tensors, numbers and strings only, so that training states load with ``weights_only=True``.

def random_state(generator):
    """The state of a ``random.Random`` (or of the ``random`` module itself)."""
    version, internal, gauss = generator.getstate()
    return {'version': version, 'internal': torch.tensor(internal, dtype=torch.int64), 'gauss': gauss}


def set_random_state(generator, state):
    """Restore a state of :func:`random_state` into a ``random.Random`` (or the ``random`` module)."""
    generator.setstate((state['version'], tuple(state['internal'].tolist()), state['gauss']))


def global_rng_states():
    """The global random states: Python's ``random``, NumPy's ``np.random``, torch's CPU generator and, once
    CUDA is in use, the current CUDA device's generator."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        'python': random_state(random),
        'numpy': {'name': name, 'keys': torch.from_numpy(keys.astype(np.int64)), 'position': position,
                  'has_gauss': has_gauss, 'cached_gaussian': cached_gaussian},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def restore_global_rng_states(states):
    """Restore the states of :func:`global_rng_states` (CUDA's only where CUDA is available)."""
    set_random_state(random, states['python'])
    numpy_state = states['numpy']
    np.random.set_state((numpy_state['name'], numpy_state['keys'].numpy().astype(np.uint32),
                         numpy_state['position'], numpy_state['has_gauss'], numpy_state['cached_gaussian']))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])
