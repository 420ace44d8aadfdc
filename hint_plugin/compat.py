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


def _distributed_backend(requested=None):
    """NCCL where GPUs exist, gloo on CPU-only machines, unless the options name one."""
    import torch
    if requested:
        return requested
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, **kwargs):
    """BasicSR's ``init_dist`` without its CUDA assumptions.

    BasicSR 1.4.2 divides by ``torch.cuda.device_count()`` and hard-codes NCCL; this one binds a GPU only
    when there is one and picks gloo on CPU. ``launcher`` is ``'pytorch'`` (torchrun) or ``'slurm'``.
    """
    import os

    import torch
    import torch.distributed as dist
    from basicsr.utils import dist_util

    if launcher == 'slurm':
        if not torch.cuda.is_available():
            raise RuntimeError('the slurm launcher needs GPUs; use torchrun (--launcher pytorch) on CPU machines')
        return dist_util._init_dist_slurm(_distributed_backend(backend), **kwargs)
    if launcher != 'pytorch':
        raise ValueError(f'Invalid launcher type: {launcher}')
    kwargs.pop('port', None)  # torchrun passes the rendezvous address through the environment
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', os.environ['RANK'])) % torch.cuda.device_count())
    dist.init_process_group(backend=_distributed_backend(backend), **kwargs)


def use_portable_init_dist():
    """Route BasicSR's option parser to :func:`init_dist` (gloo on CPU, NCCL on GPU)."""
    from basicsr.utils import dist_util, options
    options.init_dist = init_dist
    dist_util.init_dist = init_dist


def load_resume_state(opt):
    """BasicSR's ``load_resume_state`` that also works without CUDA and loads with ``weights_only=True``.

    Finds the newest ``experiments/<name>/training_states/*.state`` with ``--auto_resume`` (or takes
    ``path.resume_state``), loads it on the CPU (optimizers move their state to the parameters' device) and
    points ``pretrain_network_*`` at the matching checkpoints via BasicSR's ``check_resume``.
    """
    from os import path as osp

    import torch
    from basicsr.utils import check_resume, scandir

    resume_state_path = opt['path'].get('resume_state')
    if opt['auto_resume']:
        state_dir = osp.join('experiments', opt['name'], 'training_states')
        if osp.isdir(state_dir):
            iters = [int(name.split('.state')[0]) for name in scandir(state_dir, suffix='state', recursive=False)]
            if iters:
                resume_state_path = osp.join(state_dir, f'{max(iters)}.state')
                opt['path']['resume_state'] = resume_state_path
    if not resume_state_path:
        return None
    resume_state = torch.load(resume_state_path, map_location='cpu', weights_only=True)
    check_resume(opt, resume_state['iter'])
    return resume_state


def use_portable_resume():
    """Route BasicSR's training pipeline to :func:`load_resume_state`."""
    import basicsr.train
    basicsr.train.load_resume_state = load_resume_state


def apply_all():
    """Every fix, in the order they are needed: the import alias must precede ``import basicsr``."""
    alias_functional_tensor()
    use_portable_init_dist()
    use_portable_resume()
