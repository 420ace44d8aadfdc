"""Training states checked before a resume.

A state saved by :meth:`HINTModel.save_training_state` names its experiment and the network file saved with it
(:func:`state_identity`). :func:`read_resume_state` refuses a state of another experiment (naming both), a file
that is no training state (a ``net_g_*.pth`` given as ``resume_state``), and a damaged or unreadable one; with
``--auto_resume`` it takes the newest state that reads and whose network file exists, warning about each newer
one it skips.
"""
import re
from collections.abc import Mapping
from os import path as osp

from hint_plugin.errors import ResumeError  # noqa: F401  (raised here; importable from here too)

STATE_KEYS = ('epoch', 'iter')  # what tells a training state from other files (a network's .pth)


def state_identity(opt, current_iter):
    """What a training state records about its run: the experiment's name and the network file of its iteration
    (BasicSR's ``check_resume`` loads ``<models>/net_g_<iter>.pth`` on resume)."""
    return {'experiment': opt['name'], 'network_file': network_file(opt, current_iter)}


def network_file(opt, current_iter):
    """``experiments/<name>/models/net_g_<iter>.pth`` of this run, as BasicSR's ``check_resume`` names it."""
    return osp.join(opt['path']['models'], f'net_g_{current_iter}.pth')


def load_state(path):
    """The training state at ``path`` (``weights_only=True``, on the CPU), or :class:`ResumeError` naming it."""
    import torch
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise ResumeError(f'resume_state {path}: no such file') from None
    except Exception as error:  # noqa: BLE001  (a truncated zip, a pickle weights_only refuses ...)
        raise ResumeError(f'resume_state {path} cannot be read (damaged or incomplete?): '
                          f'{str(error).splitlines()[0] if str(error) else type(error).__name__}') from None
    if not isinstance(state, Mapping) or not all(key in state for key in STATE_KEYS):
        keys = sorted(map(str, state))[:6] if isinstance(state, Mapping) else type(state).__name__
        what = (' (it holds network weights: give it as path.pretrain_network_g)'
                if isinstance(state, Mapping) and ({'params', 'params_ema'} & set(state)) else '')
        raise ResumeError(f'resume_state {path} is not a training state: expected the keys '
                          f'{", ".join(STATE_KEYS)} of experiments/<name>/training_states/<iter>.state, found '
                          f'{keys}{what}')
    return state


def check_state(state, path, opt):
    """Refuse a state of another experiment, or one whose network file is missing."""
    experiment = state.get('experiment')
    if experiment is not None and experiment != opt['name']:
        raise ResumeError(f'resume_state {path} belongs to experiment {experiment!r}, not to this one '
                          f'({opt["name"]!r}): resuming would mix its optimizer and iteration with '
                          f"{opt['name']!r}'s weights; give this experiment's state, or start from that run's "
                          'weights with path.pretrain_network_g')
    expected = network_file(opt, state['iter'])
    if not osp.isfile(expected):
        saved = f' (saved with {state["network_file"]})' if state.get('network_file') else ''
        raise ResumeError(f'resume_state {path} (iter {state["iter"]}) needs the network file {expected}, which is '
                          f'missing{saved}')


def newest_states(state_dir):
    """``<iter>.state`` files of ``state_dir``, newest iteration first (a ``.state.tmp`` is never one)."""
    if not osp.isdir(state_dir):
        return []
    import os
    iters = sorted((int(name.split('.')[0]) for name in os.listdir(state_dir) if re.fullmatch(r'\d+\.state', name)),
                   reverse=True)
    return [osp.join(state_dir, f'{iteration}.state') for iteration in iters]


def read_resume_state(opt, logger=None):
    """The state to resume from, checked (:func:`load_state`, :func:`check_state`), or ``None``.

    With ``opt['auto_resume']``, the newest complete state of ``experiments/<name>/training_states`` (setting
    ``opt['path']['resume_state']``); a damaged newer one is skipped with a warning naming it. Otherwise
    ``path.resume_state``, whose problems raise :class:`ResumeError`.
    """
    if opt.get('auto_resume'):
        for path in newest_states(osp.join('experiments', opt['name'], 'training_states')):
            try:
                state = load_state(path)
                check_state(state, path, opt)
            except ResumeError as error:
                if logger is not None:
                    logger.warning(f'--auto_resume skips {path}: {error}')
                continue
            opt['path']['resume_state'] = path
            return state
    path = opt['path'].get('resume_state')
    if not path:
        return None
    state = load_state(path)
    check_state(state, path, opt)
    return state
