"""The outside fixes BasicSR 1.4.2 needs on today's PyTorch stack, and for an exact resume, each a small named
function.

Nothing in site-packages is edited. ``import hint_plugin`` applies only :func:`alias_functional_tensor`, without
which ``import basicsr`` fails on torchvision >= 0.17. The others change BasicSR's behaviour, so they apply only
where HINT trains or tests: :func:`apply_training_fixes`, called by the plugin's entry points
(``tools/train.py``, ``tools/test.py``: :mod:`hint_plugin.cli.pipeline`) before BasicSR's pipeline starts; the
first of them makes BasicSR read option files with the plugin's safe loader.
"""
import importlib
import itertools
import sys

from hint_plugin.errors import OptionsError


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
    from basicsr.utils import dist_util

    from hint_plugin.utils.elastic import init_process_group

    if launcher == 'slurm':
        if not torch.cuda.is_available():
            raise RuntimeError('the slurm launcher needs GPUs; use torchrun (--launcher pytorch) on CPU machines')
        return dist_util._init_dist_slurm(_distributed_backend(backend), **kwargs)
    if launcher != 'pytorch':
        raise OptionsError(f'Invalid launcher type: {launcher}')
    kwargs.pop('port', None)  # torchrun passes the rendezvous address through the environment
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', os.environ['RANK'])) % torch.cuda.device_count())
    # a fresh store namespace per torchrun round, so that restarted workers re-form the group (see utils.elastic)
    init_process_group(backend=_distributed_backend(backend), **kwargs)


def use_portable_init_dist():
    """Route BasicSR's option parser to :func:`init_dist` (gloo on CPU, NCCL on GPU)."""
    from basicsr.utils import dist_util, options
    options.init_dist = init_dist
    dist_util.init_dist = init_dist


def load_resume_state(opt):
    """BasicSR's ``load_resume_state`` that also works without CUDA and loads with ``weights_only=True``.

    Takes the newest complete ``experiments/<name>/training_states/*.state`` with ``--auto_resume`` (or
    ``path.resume_state``), checked by :func:`hint_plugin.utils.resume.read_resume_state` (its experiment, its
    network file, damage), loads it on the CPU (optimizers move their state to the parameters' device) and
    points ``pretrain_network_*`` at the matching checkpoints via BasicSR's ``check_resume``.
    """
    import logging

    from basicsr.utils import check_resume

    from hint_plugin.utils.resume import read_resume_state

    # BasicSR's logger gets its log file only later: get_root_logger() here would keep it from having one
    resume_state = read_resume_state(opt, logging.getLogger('basicsr'))
    if resume_state is not None:
        check_resume(opt, resume_state['iter'])
    return resume_state


def use_portable_resume():
    """Route BasicSR's training pipeline to :func:`load_resume_state`."""
    import basicsr.train
    basicsr.train.load_resume_state = load_resume_state


class ResumableOrder:
    """Mixin for BasicSR's ``EnlargedSampler``: the pass over one given epoch can start past its first indices.

    BasicSR restarts the interrupted epoch from its first batch on resume, so the batches the saved run had
    already trained on would come again; :meth:`resume_at` makes that epoch continue where it stopped. The
    sampler's shuffle is seeded by the epoch number alone, so the order itself is the saved run's.
    """

    resume_epoch = None
    resume_offset = 0

    def resume_at(self, epoch, offset):
        """Leave out the first ``offset`` indices of every pass over epoch ``epoch`` (BasicSR makes one; a
        DataLoader with workers may start a throw-away pass before ``set_epoch``, which this also covers)."""
        self.resume_epoch, self.resume_offset = epoch, offset

    def __iter__(self):
        indices = super().__iter__()
        if self.epoch == self.resume_epoch:
            indices = itertools.islice(indices, self.resume_offset, None)
        return indices


def create_train_val_dataloader(opt, logger):
    """BasicSR's ``create_train_val_dataloader``, with the loaders' iterators kept off torch's global generator
    and, on resume, the interrupted epoch continuing at its next batch."""
    result = create_train_val_dataloader.__wrapped__(opt, logger)
    train_loader, train_sampler, val_loaders = result[:3]
    give_loaders_own_generators([train_loader, *val_loaders], opt['manual_seed'] + opt['rank'])
    if opt['path'].get('resume_state') and train_loader is not None:
        resume_interrupted_epoch(opt['path']['resume_state'], train_loader, train_sampler, logger)
    if train_loader is not None:
        result = (*result[:3], last_epoch_for(result[4], train_loader, opt, logger), *result[4:])
    return result


def last_epoch_for(total_iters, train_loader, opt, logger):
    """The last epoch BasicSR's loop must run (``for epoch in range(start, last + 1)``) to reach ``total_iters``.

    BasicSR 1.4.2 counts ``ceil(images / batch)`` batches per epoch while its loader drops the last partial
    batch, so its loop stops early whenever the dataset size is not a multiple of the batch (3 images, batch 2,
    ``total_iter: 8`` ended after iteration 5). Counted from the loader's real ``len(train_loader)`` batches,
    every epoch up to this one holds enough of them, from the start or from a resumed epoch (whose iteration is
    ``epoch * len(train_loader)`` plus the batches it had consumed).
    """
    batches_per_epoch = len(train_loader)
    if batches_per_epoch == 0:
        raise OptionsError(f"datasets.train ({opt['datasets']['train'].get('name')}): an epoch holds "
                            f'{len(train_loader.sampler)} samples per process, fewer than one batch of '
                            f'{train_loader.batch_size} (batch_size_per_gpu x num_gpu); BasicSR drops partial batches, '
                            'so no iteration would run. Add images, raise dataset_enlarge_ratio or lower the batch.')
    last = -(-total_iters // batches_per_epoch) - 1
    logger.info(f'{batches_per_epoch} full batches per epoch: epochs 0 to {last} reach total_iter {total_iters}.')
    return last


def give_loaders_own_generators(loaders, seed):
    """Each DataLoader iterator draws a base seed (for its workers' torch generators) from its loader's
    ``generator``, by default torch's global one. BasicSR creates iterators at other moments in a resumed run
    than in an uninterrupted one (validation creates some too), which would shift torch's global stream; with a
    generator of their own the loaders leave that stream to the model and the network."""
    import torch

    for offset, loader in enumerate(loaders):
        if loader is not None and loader.generator is None:
            loader.generator = torch.Generator().manual_seed(seed + offset)


def resume_interrupted_epoch(state_path, train_loader, train_sampler, logger):
    """Make the sampler skip the batches of its epoch that the run saved in ``state_path`` had consumed.

    Every epoch has ``len(train_loader)`` batches (BasicSR drops the last partial one), so that run had consumed
    ``iter - epoch * len(train_loader)`` batches of the epoch it was saved in.
    """
    import torch

    state = torch.load(state_path, map_location='cpu', weights_only=True, mmap=True)
    epoch, consumed = state['epoch'], state['iter'] - state['epoch'] * len(train_loader)
    if 0 <= consumed <= len(train_loader):
        train_sampler.resume_at(epoch, consumed * train_loader.batch_size)
        logger.info(f'Resuming epoch {epoch} after its first {consumed} of {len(train_loader)} batches.')
    else:
        logger.warning(f'Cannot place iter {state["iter"]} in epoch {epoch} of {len(train_loader)} batches '
                       '(another dataset or batch size?): that epoch restarts from its first batch.')


_RESUMABLE_SAMPLER = None


def resumable_sampler_class():
    """BasicSR's ``EnlargedSampler`` with :class:`ResumableOrder` mixed in (made once).

    The class is made here because ``basicsr`` may only be imported after :func:`alias_functional_tensor`.
    """
    from basicsr.data.data_sampler import EnlargedSampler

    global _RESUMABLE_SAMPLER
    if _RESUMABLE_SAMPLER is None:
        _RESUMABLE_SAMPLER = type('ResumableEnlargedSampler', (ResumableOrder, EnlargedSampler),
                                  {'__module__': __name__, '__doc__': ResumableOrder.__doc__})
    return _RESUMABLE_SAMPLER


def use_resumable_data_order():
    """Route BasicSR's training pipeline to a ``ResumableOrder`` sampler and :func:`create_train_val_dataloader`."""
    import basicsr.train

    if not issubclass(basicsr.train.EnlargedSampler, ResumableOrder):
        basicsr.train.EnlargedSampler = resumable_sampler_class()
    if basicsr.train.create_train_val_dataloader is not create_train_val_dataloader:
        create_train_val_dataloader.__wrapped__ = basicsr.train.create_train_val_dataloader
        basicsr.train.create_train_val_dataloader = create_train_val_dataloader


def lmdb_backend_init(self, db_paths, client_keys='default', readonly=True, lock=False, readahead=False, **kwargs):
    """BasicSR's ``LmdbBackend.__init__`` opening read-only LMDBs through
    :func:`hint_plugin.data.lmdb_check.open_shared_lmdb` (one environment per process and LMDB: py-lmdb 3 refuses
    a second one, which training and validation on one LMDB would open)."""
    from hint_plugin.data.lmdb_check import open_checked_lmdb, open_shared_lmdb

    client_keys = [client_keys] if isinstance(client_keys, str) else list(client_keys)
    self.db_paths = [str(path) for path in (db_paths if isinstance(db_paths, (list, tuple)) else [db_paths])]
    if len(client_keys) != len(self.db_paths):
        raise ValueError(f'client_keys and db_paths should have the same length, but received {client_keys} '
                         f'and {self.db_paths}')
    options = dict(lock=lock, readahead=readahead, **kwargs)
    self._client = {key: open_shared_lmdb(path, **options) if readonly else open_checked_lmdb(path, **options)
                    for key, path in zip(client_keys, self.db_paths)}


def share_lmdb_environments():
    """Route BasicSR's ``LmdbBackend`` to :func:`lmdb_backend_init`."""
    from basicsr.utils.file_client import LmdbBackend
    LmdbBackend.__init__ = lmdb_backend_init


def name_paired_dataset_errors():
    """Build ``type: PairedImageDataset`` as :class:`~hint_plugin.data.checked_paired_image_dataset.
    CheckedPairedImageDataset`: the same options and items, but lq/gt folders or LMDBs holding different names,
    pairs of different sizes and unreadable images are named (BasicSR's own raises a bare ``AssertionError``,
    a scale message without file names, or crops silently)."""
    from basicsr.utils.registry import DATASET_REGISTRY

    from hint_plugin.data.checked_paired_image_dataset import CheckedPairedImageDataset
    DATASET_REGISTRY._obj_map['PairedImageDataset'] = CheckedPairedImageDataset


def safe_ordered_yaml():
    """BasicSR's ``ordered_yaml()`` pair with the safe :class:`~hint_plugin.utils.option_yaml.OptionLoader` as
    its loader (its dumper unchanged)."""
    from hint_plugin.utils.option_yaml import OptionLoader
    return OptionLoader, safe_ordered_yaml.__wrapped__()[1]


def use_safe_option_files():
    """Route BasicSR's ``parse_options`` (which reads ``-opt`` with ``ordered_yaml()[0]``, PyYAML's full loader:
    a ``!!python/object/apply`` tag there runs code) to :func:`safe_ordered_yaml`."""
    from basicsr.utils import options
    if options.ordered_yaml is not safe_ordered_yaml:
        safe_ordered_yaml.__wrapped__ = options.ordered_yaml
        options.ordered_yaml = safe_ordered_yaml


def apply_training_fixes():
    """Every fix, for the plugin's own train and test entry points (BasicSR's pipeline in this process).

    The import alias comes first (it must precede ``import basicsr``); then the safe option-file loader, distributed
    init on CPU (gloo), CPU resume with ``weights_only``, the exact data order on resume, shared read-only LMDBs and
    BasicSR's paired dataset naming its bad data.
    """
    alias_functional_tensor()
    use_safe_option_files()
    use_portable_init_dist()
    use_portable_resume()
    use_resumable_data_order()
    share_lmdb_environments()
    name_paired_dataset_errors()
