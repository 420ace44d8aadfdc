"""HINTModel: BasicSR's SRModel plus what the HINT recipes add.

SRModel already does validation with ``METRIC_REGISTRY`` metrics, best-metric tracking, image saving, EMA
(``ema_decay`` / ``params_ema``), checkpointing and loss reduction. This model adds: any ``torch.optim``
optimizer, the cyclic cosine schedule, the FFT loss, mixup, progressive patch/batch sizes, gradient clipping,
padded and tiled testing, ``weights_only`` loading, and DDP on CPU (gloo) with the unused parameters of the
official variant.
"""
import bisect
import random
from collections import OrderedDict
from os import path as osp

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DataParallel, DistributedDataParallel

from hint_plugin.models.lr_scheduler import CosineAnnealingRestartCyclicLR
from hint_plugin.utils.checkpoint import atomic_save, load_weights
from hint_plugin.utils.tiling import restore

DEFAULT_GRAD_CLIP_MAX_NORM = 0.01


def progressive_stage(current_iter, stage_iters):
    """Index of the progressive stage that iteration ``current_iter`` (1-based) falls in.

    Stage ``j`` covers iterations up to ``sum(stage_iters[:j + 1])``; later iterations stay in the last one.
    """
    boundaries, total = [], 0
    for count in stage_iters:
        total += count
        boundaries.append(total)
    return min(bisect.bisect_left(boundaries, current_iter), len(stage_iters) - 1)


def mixup(lq, gt, beta):
    """Mix each (lq, gt) pair with a random other pair of the batch, ``lambda ~ Beta(beta, beta)``."""
    lam = torch.distributions.Beta(beta, beta).sample().item()
    index = torch.randperm(lq.shape[0], device=lq.device)
    return lam * lq + (1 - lam) * lq[index], lam * gt + (1 - lam) * gt[index]


def random_batch_and_crop(lq, gt, batch_size, patch_size):
    """A random subset of ``batch_size`` pairs and one random ``patch_size`` crop shared by lq and gt."""
    if batch_size < lq.shape[0]:
        keep = torch.tensor(sorted(random.sample(range(lq.shape[0]), batch_size)), device=lq.device)
        lq, gt = lq[keep], gt[keep]
    height, width = gt.shape[-2:]
    if patch_size < height or patch_size < width:
        top = random.randint(0, max(height - patch_size, 0))
        left = random.randint(0, max(width - patch_size, 0))
        lq = lq[..., top:top + patch_size, left:left + patch_size]
        gt = gt[..., top:top + patch_size, left:left + patch_size]
    return lq, gt


@MODEL_REGISTRY.register()
class HINTModel(SRModel):
    """Image restoration model for HINT (and any network of ``ARCH_REGISTRY``); ``model_type: HINTModel``."""

    def __init__(self, opt):
        # The official HINT has parameters that never get a gradient (see HINT's docstring): DDP must know.
        opt.setdefault('find_unused_parameters', True)
        super().__init__(opt)

    # ----------------------------------------------------------------------------------------- set-up
    def model_to_device(self, net):
        """Like BasicSR's, but DDP also works on CPU (gloo): ``device_ids`` only when on a GPU."""
        net = net.to(self.device)
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            return DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt['find_unused_parameters'])
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    def init_training_settings(self):
        train_opt = self.opt['train']
        super().init_training_settings()
        self.cri_fft = build_loss(train_opt['fft_loss_opt']).to(self.device) if train_opt.get('fft_loss_opt') else None
        mixing = train_opt.get('mixing_augs') or {}
        self.mixup_beta = mixing.get('mixup_beta', 1.2) if mixing.get('mixup') else None
        self.mixup_use_identity = mixing.get('use_identity', False)
        self.grad_clip_max_norm = (train_opt.get('grad_clip_max_norm', DEFAULT_GRAD_CLIP_MAX_NORM)
                                   if train_opt.get('use_grad_clip') else None)
        self._init_progressive(self.opt['datasets'].get('train', {}))

    def _init_progressive(self, dataset_opt):
        """Read ``mini_batch_sizes``, ``iters`` and ``gt_sizes`` (all or none) from the train dataset options."""
        keys = ('mini_batch_sizes', 'iters', 'gt_sizes')
        given = [dataset_opt.get(key) for key in keys]
        self.progressive = None
        self._logged_stage = None
        if all(value is None for value in given):
            return
        if any(value is None for value in given) or len({len(value) for value in given}) != 1:
            raise ValueError(f'datasets.train: {", ".join(keys)} must be given together as lists of one length, '
                             f'got {dict(zip(keys, given))}')
        gt_size = dataset_opt.get('gt_size')
        if gt_size is not None and max(given[2]) > gt_size:
            raise ValueError(f'datasets.train.gt_sizes: {given[2]} has a size above gt_size ({gt_size}), the '
                             'patch the loader delivers')
        self.progressive = dict(zip(keys, given))

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """Any ``torch.optim`` optimizer by class name (``Adam``, ``AdamW`` ...), with its keywords."""
        optimizer_class = getattr(torch.optim, optim_type, None)
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
            raise ValueError(f'train.optim_g.type: {optim_type!r} is not a torch.optim optimizer '
                             '(e.g. Adam, AdamW, SGD)')
        return optimizer_class(params, lr, **kwargs)

    def setup_schedulers(self):
        """BasicSR's schedulers plus ``CosineAnnealingRestartCyclicLR``."""
        scheduler_opt = dict(self.opt['train']['scheduler'])
        if scheduler_opt.pop('type') != 'CosineAnnealingRestartCyclicLR':
            return super().setup_schedulers()
        self.schedulers.extend(CosineAnnealingRestartCyclicLR(optimizer, **scheduler_opt)
                               for optimizer in self.optimizers)

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Load with ``weights_only=True``; accepts ``params``/``params_ema``/bare state_dicts."""
        net = self.get_bare_model(net)
        mismatch = load_weights(net, load_path, param_key, strict)
        logger = get_root_logger()
        logger.info(f'Loaded {net.__class__.__name__} from {load_path} (key {param_key!r}).')
        if mismatch:
            logger.warning(f'Non-strict load of {load_path}: {mismatch}')

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's checkpoint layout (``{param_key: state_dict}``), written atomically."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        checkpoint = {
            key: {name.removeprefix('module.'): value.cpu() for name, value in self.get_bare_model(n).state_dict().items()}
            for n, key in zip(nets, keys)
        }
        label = 'latest' if current_iter == -1 else current_iter
        atomic_save(checkpoint, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def save_training_state(self, epoch, current_iter):
        """BasicSR's resumable state (epoch, iter, optimizers, schedulers), written atomically."""
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [optimizer.state_dict() for optimizer in self.optimizers],
            'schedulers': [scheduler.state_dict() for scheduler in self.schedulers],
        }
        atomic_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    # -------------------------------------------------------------------------------------- training
    def _progressive_batch(self, current_iter):
        """Apply the current progressive stage to ``self.lq``/``self.gt``; log each stage change once."""
        stage = progressive_stage(current_iter, self.progressive['iters'])
        batch_size = self.progressive['mini_batch_sizes'][stage]
        patch_size = self.progressive['gt_sizes'][stage]
        if stage != self._logged_stage:
            get_root_logger().info(f'Progressive training stage {stage + 1}/{len(self.progressive["iters"])} '
                                   f'from iter {current_iter}: patch {patch_size}, batch {batch_size}')
            self._logged_stage = stage
        self.lq, self.gt = random_batch_and_crop(self.lq, self.gt, batch_size, patch_size)

    def _losses(self):
        """The weighted loss terms of ``self.output`` against ``self.gt``."""
        losses = OrderedDict()
        if self.cri_pix:
            losses['l_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_fft:
            losses['l_fft'] = self.cri_fft(self.output, self.gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            if l_percep is not None:
                losses['l_percep'] = l_percep
            if l_style is not None:
                losses['l_style'] = l_style
        return losses

    def optimize_parameters(self, current_iter):
        if self.progressive:
            self._progressive_batch(current_iter)
        if self.mixup_beta is not None and not (self.mixup_use_identity and random.randint(0, 1) == 1):
            self.lq, self.gt = mixup(self.lq, self.gt, self.mixup_beta)

        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        losses = self._losses()
        l_total = sum(losses.values())
        l_total.backward()
        if self.grad_clip_max_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip_max_norm)
        self.optimizer_g.step()

        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # --------------------------------------------------------------------------------------- testing
    def test(self):
        """Restore ``self.lq``: padded to ``val.window_size`` (8), optionally in blended ``val.tile`` tiles."""
        val_opt = self.opt.get('val') or {}
        tile = val_opt.get('tile') or {}
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = restore(net, self.lq, window_size=val_opt.get('window_size', 8),
                                  tile=tile.get('size'), overlap=tile.get('overlap', 32))
        net.train(was_training)
