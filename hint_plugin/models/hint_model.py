"""HINTModel: BasicSR's SRModel plus what the HINT recipes add.

SRModel already does validation with ``METRIC_REGISTRY`` metrics, best-metric tracking, image saving, EMA
(``ema_decay`` / ``params_ema``), checkpointing and loss reduction. This model adds: any ``torch.optim``
optimizer, the cyclic cosine schedule, the FFT loss, mixup, progressive patch/batch sizes, gradient clipping,
padded and tiled testing, ``weights_only`` loading, DDP on CPU (gloo) with the unused parameters of the
official variant, and two speed options for the training forward pass: ``train.amp: bf16`` (autocast to
bfloat16) and ``train.compile`` (``torch.compile``). Its options are checked once, when the option file is read
(:mod:`hint_plugin.utils.option_schema`, ``network_g`` included), and trusted here. And robustness: a
non-finite loss stops training (or skips the step with ``train.skip_nonfinite: true``), no
non-finite weights are saved, saves are atomic, and a resumed run continues exactly where the saved one was
(see :class:`HINTModel`).
"""
import bisect
import contextlib
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

from hint_plugin.archs.padding import PAD_MULTIPLE
from hint_plugin.errors import NonFiniteError  # noqa: F401  (raised here; importable from here too)
from hint_plugin.models.accumulation import batch_coupling_note, gradient_sync, micro_batches
from hint_plugin.models.grad_scaling import build_grad_scaler, scaled_step
from hint_plugin.models.lr_scheduler import CosineAnnealingRestartCyclicLR
from hint_plugin.utils.checkpoint import (atomic_save, first_nonfinite, global_rng_states, load_weights,
                                          random_state, restore_global_rng_states, set_random_state)
from hint_plugin.utils.optimizers import build_optimizer
from hint_plugin.utils.resume import state_identity
from hint_plugin.utils.tiling import restore
from hint_plugin.utils.validation import check_finite_output

DEFAULT_GRAD_CLIP_MAX_NORM = 0.01
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def progressive_stage(current_iter, stage_iters):
    """Index of the progressive stage that iteration ``current_iter`` (1-based) falls in.

    Stage ``j`` covers iterations up to ``sum(stage_iters[:j + 1])``; later iterations stay in the last one.
    """
    boundaries, total = [], 0
    for count in stage_iters:
        total += count
        boundaries.append(total)
    return min(bisect.bisect_left(boundaries, current_iter), len(stage_iters) - 1)


def amp_dtype(setting):
    """``train.amp``: ``bf16`` or ``fp16`` (the training forward pass under ``torch.autocast`` to bfloat16 /
    float16), or off (``false`` / ``~``, the default). fp16 comes with a ``GradScaler``
    (:mod:`hint_plugin.models.grad_scaling`); bf16 has float32's range and needs none. Checked by the schema."""
    return AMP_DTYPES[setting] if setting else None


def compile_options(setting):
    """``train.compile``: off (``false`` / ``~``, the default), ``true`` (torch.compile's defaults) or a dict of
    ``torch.compile`` keywords (``mode``, ``backend``, ``dynamic``, ``fullgraph`` ...). Returns the keywords or None.
    Checked by the schema."""
    if setting is None or setting is False:
        return None
    return {} if setting is True else dict(setting)


def mixup(lq, gt, beta, rng=random):
    """Mix each (lq, gt) pair with a random other pair of the batch, ``lambda ~ Beta(beta, beta)``.

    ``rng`` is a ``random.Random`` (default: the ``random`` module) that draws lambda and the pairing.
    """
    lam = rng.betavariate(beta, beta)
    order = list(range(lq.shape[0]))
    rng.shuffle(order)
    index = torch.tensor(order, device=lq.device)
    return lam * lq + (1 - lam) * lq[index], lam * gt + (1 - lam) * gt[index]


def random_batch_and_crop(lq, gt, batch_size, patch_size, rng=random):
    """A random subset of ``batch_size`` pairs and one random ``patch_size`` crop shared by lq and gt.

    ``rng`` is a ``random.Random`` (default: the ``random`` module).
    """
    if batch_size < lq.shape[0]:
        keep = torch.tensor(sorted(rng.sample(range(lq.shape[0]), batch_size)), device=lq.device)
        lq, gt = lq[keep], gt[keep]
    height, width = gt.shape[-2:]
    if patch_size < height or patch_size < width:
        top = rng.randint(0, max(height - patch_size, 0))
        left = rng.randint(0, max(width - patch_size, 0))
        lq = lq[..., top:top + patch_size, left:left + patch_size]
        gt = gt[..., top:top + patch_size, left:left + patch_size]
    return lq, gt


@MODEL_REGISTRY.register()
class HINTModel(SRModel):
    """Image restoration model for HINT (and any network of ``ARCH_REGISTRY``); ``model_type: HINTModel``.

    Exact resume. A run killed after saving iteration ``k`` and resumed with ``--auto_resume`` reaches the
    same weights as an uninterrupted run (on CPU, fixed ``manual_seed``, ``num_worker_per_gpu: 0``) because
    every random number is drawn as it would have been and every batch comes in the same order:

    * the model's own randomness (mixup, the identity choice, progressive batch subsets and crops) comes from
      ``self.rng``, a ``random.Random`` seeded from ``manual_seed`` and the rank, never from a global generator;
    * the training state holds each rank's ``self.rng`` state and global Python / NumPy / torch (and CUDA)
      states, restored by :meth:`resume_training`. Nothing draws from them between that and the first batch
      (nor between a save and the next batch of an uninterrupted run, validation included): the DataLoaders
      draw their iterators' base seeds from generators of their own
      (:func:`hint_plugin.compat.give_loaders_own_generators`), so that BasicSR creating iterators at other
      moments in a resumed run leaves torch's global stream alone. So the datasets' augmentations (crops, flips,
      rotations, noise) and whatever the network draws (dropout) repeat exactly;
    * the interrupted epoch resumes at its next batch rather than at its first one: the sampler skips the
      batches the saved run consumed (:func:`hint_plugin.compat.create_train_val_dataloader`).

    With data workers (``num_worker_per_gpu > 0``) the batch order and the model's randomness are still exact,
    but the dataset's augmentations for the rest of the interrupted epoch are not: workers draw from their own
    generators, which BasicSR seeds the same way whenever an epoch's workers start, so the resumed epoch's
    workers restart their streams and get other batches each. From the next epoch on they match again, for
    datasets drawing from Python / NumPy (as BasicSR's do) and without ``persistent_workers``.
    """

    # ----------------------------------------------------------------------------------------- set-up
    def model_to_device(self, net):
        """Like BasicSR's, but DDP also works on CPU (gloo): ``device_ids`` only when on a GPU.

        ``find_unused_parameters`` (costly: a graph traversal per step) is on only where the network says some
        parameters can miss a gradient (HINT's ``has_unused_parameters``: every ``cache_init`` but ``zeros``),
        or where the options set it.
        """
        net = net.to(self.device)
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            find_unused = self.opt.get('find_unused_parameters')
            if find_unused is None:
                find_unused = getattr(net, 'has_unused_parameters', True)
            return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
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
        self.skip_nonfinite = train_opt.get('skip_nonfinite', False)
        self.skipped_steps = 0
        self.amp_dtype = amp_dtype(train_opt.get('amp'))
        self.grad_scaler = (build_grad_scaler(self.device, train_opt.get('grad_scaler') or {})
                            if train_opt.get('amp') == 'fp16' else None)
        self.amp_skipped_steps = 0
        self.accum_iter = train_opt.get('accum_iter') or 1
        if batch_coupling_note(self.opt['network_g'], self.accum_iter):
            get_root_logger().warning(batch_coupling_note(self.opt['network_g'], self.accum_iter))
        compile_kwargs = compile_options(train_opt.get('compile'))
        self.train_forward = self.net_g if compile_kwargs is None else torch.compile(self.net_g, **compile_kwargs)
        if self.amp_dtype is not None or compile_kwargs is not None:
            get_root_logger().info(f'Training forward pass: autocast {train_opt.get("amp") or "off"}, torch.compile '
                                   f'{"off" if compile_kwargs is None else compile_kwargs or "on"} (validation and '
                                   'testing run the plain network in float32).')
        self.rng = random.Random(self._model_seed())
        self._init_progressive(self.opt['datasets'].get('train', {}))

    def _model_seed(self):
        """Seed of ``self.rng``: from ``manual_seed`` and the rank, apart from the global generators' seeds."""
        seed = self.opt.get('manual_seed')
        return None if seed is None else f'HINTModel:{seed}:{self.opt.get("rank", 0)}'

    def _init_progressive(self, dataset_opt):
        """Read ``mini_batch_sizes``, ``iters`` and ``gt_sizes`` (all or none, as the schema's
        ``rule_progressive`` checked them) from the train dataset options."""
        keys = ('mini_batch_sizes', 'iters', 'gt_sizes')
        self._logged_stage = None
        self.progressive = {key: dataset_opt[key] for key in keys} if dataset_opt.get('iters') else None

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """Any ``torch.optim`` optimizer by class name (``Adam``, ``AdamW`` ...), with its keywords; Adam and
        AdamW are PyTorch's fused implementation unless ``fused`` or ``foreach`` is given
        (:mod:`hint_plugin.utils.optimizers`)."""
        optimizer = build_optimizer(optim_type, params, lr, **kwargs)
        get_root_logger().info(f'Optimizer {optim_type}: fused={optimizer.defaults.get("fused")}, '
                               f'foreach={optimizer.defaults.get("foreach")} (None: PyTorch\'s default)')
        return optimizer

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
        """BasicSR's checkpoint layout (``{param_key: state_dict}``), written atomically.

        Raises :class:`NonFiniteError` naming the first NaN / infinite tensor instead of saving it.
        """
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        checkpoint = {
            key: {name.removeprefix('module.'): value.cpu()
                  for name, value in self.get_bare_model(n).state_dict().items()}
            for n, key in zip(nets, keys)
        }
        label = 'latest' if current_iter == -1 else current_iter
        path = osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth')
        for key, state_dict in checkpoint.items():
            name = first_nonfinite(state_dict)
            if name is not None:
                raise NonFiniteError(f'refusing to save {path}: {key}.{name} holds NaN or infinite values '
                                     f'(iter {current_iter}); the previous checkpoints are kept')
        atomic_save(checkpoint, path)

    def save_training_state(self, epoch, current_iter):
        """BasicSR's resumable state (epoch, iter, optimizers, schedulers) plus the random states of every rank
        and the skipped-step count, written atomically by rank 0.

        Every rank must call it (BasicSR's training loop does): the ranks' random states are gathered.
        """
        if current_iter == -1:
            return
        random_states = self._gather_from_ranks(self._random_states())
        if self.opt.get('rank', 0) != 0:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [optimizer.state_dict() for optimizer in self.optimizers],
            'schedulers': [scheduler.state_dict() for scheduler in self.schedulers],
            'random_states': random_states,
            'skipped_steps': self.skipped_steps,
            **state_identity(self.opt, current_iter),  # its experiment and network file, checked on resume
            **self._grad_scaler_state(),
        }
        atomic_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        """BasicSR's optimizers and schedulers, then the skipped-step counts, the fp16 scaler and this rank's
        random states."""
        super().resume_training(resume_state)
        self.skipped_steps = resume_state.get('skipped_steps', 0)
        self._restore_grad_scaler(resume_state)
        per_rank = resume_state.get('random_states')
        if per_rank is None or len(per_rank) != self.opt.get('world_size', 1):
            get_root_logger().warning(
                f'The training state holds no random states for {self.opt.get("world_size", 1)} process(es): '
                'the resumed run draws other random numbers than an uninterrupted run would.')
            return
        self._restore_random_states(per_rank[self.opt.get('rank', 0)])

    def _grad_scaler_state(self):
        """The fp16 scaler's state and its skipped-step count for the training state (nothing without fp16)."""
        if self.grad_scaler is None:
            return {}
        return {'grad_scaler': self.grad_scaler.state_dict(), 'amp_skipped_steps': self.amp_skipped_steps}

    def _restore_grad_scaler(self, resume_state):
        """Inverse of :meth:`_grad_scaler_state`; a state saved without fp16 leaves the scaler at its start."""
        if self.grad_scaler is None:
            return
        if 'grad_scaler' in resume_state:
            self.grad_scaler.load_state_dict(resume_state['grad_scaler'])
            self.amp_skipped_steps = resume_state.get('amp_skipped_steps', 0)
        else:
            get_root_logger().warning('The training state holds no fp16 GradScaler state (saved without '
                                      'train.amp: fp16?): the loss scale starts afresh.')

    def _random_states(self):
        """This process's random states: the global generators' and ``self.rng``'s."""
        return {'global': global_rng_states(), 'model': random_state(self.rng)}

    def _restore_random_states(self, states):
        """Inverse of :meth:`_random_states`."""
        restore_global_rng_states(states['global'])
        set_random_state(self.rng, states['model'])

    def _gather_from_ranks(self, obj):
        """``[obj of rank 0, obj of rank 1, ...]`` (a collective call under DDP)."""
        if not self.opt['dist']:
            return [obj]
        gathered = [None] * self.opt['world_size']
        torch.distributed.all_gather_object(gathered, obj)
        return gathered

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
        self.lq, self.gt = random_batch_and_crop(self.lq, self.gt, batch_size, patch_size, self.rng)

    def _augment_batch(self, current_iter):
        """The progressive batch and crop, then mixup (unless the identity is drawn), from ``self.rng``."""
        if self.progressive:
            self._progressive_batch(current_iter)
        if self.mixup_beta is not None and not (self.mixup_use_identity and self.rng.randint(0, 1) == 1):
            self.lq, self.gt = mixup(self.lq, self.gt, self.mixup_beta, self.rng)

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

    def _nonfinite_anywhere(self, l_total):
        """Whether the total loss is NaN or infinite here or, under DDP, on any rank (all take one decision)."""
        flag = (~torch.isfinite(l_total.detach())).to(torch.float32)
        if self.opt['dist']:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _skip_or_stop(self, current_iter, losses, l_total):
        """A non-finite loss: raise :class:`NonFiniteError` naming the iteration and the loss terms, or, with
        ``train.skip_nonfinite: true``, drop the step (no backward, no update) and count it."""
        terms = ', '.join(f'{name}: {value.detach().mean().item():.4e}' for name, value in losses.items())
        where = '' if not torch.isfinite(l_total.detach()) else ' on another rank'
        message = f'iter {current_iter}: non-finite loss{where} ({terms}; total: {l_total.detach().item():.4e})'
        logger = get_root_logger()
        if not self.skip_nonfinite:
            message += '; training stopped (train.skip_nonfinite: true skips such steps instead)'
            logger.error(message)
            raise NonFiniteError(message)
        self.optimizer_g.zero_grad()
        self.skipped_steps += 1
        logger.warning(f'{message}; step skipped ({self.skipped_steps} skipped so far)')

    def _backward(self, loss):
        """Backward pass of one micro-batch's weighted loss (scaled under fp16)."""
        if self.grad_scaler is not None:
            loss = self.grad_scaler.scale(loss)
        loss.backward()

    def _step(self):
        """Gradient clipping, optimizer step and EMA update; under fp16 through the scaler, which skips the step
        (and this EMA update) when the scaled gradients are not finite, counted in ``amp_skipped_steps``."""
        def clip():
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip_max_norm)

        clip = clip if self.grad_clip_max_norm is not None else None
        if self.grad_scaler is not None:
            if not scaled_step(self.grad_scaler, self.optimizer_g, clip):
                self.amp_skipped_steps += 1
                return
        else:
            if clip is not None:
                clip()
            self.optimizer_g.step()
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _forward_losses(self):
        """The training forward pass of ``self.lq`` (under autocast with ``train.amp``) and its loss terms."""
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            self.output = self.train_forward(self.lq)
        if self.output.dtype in (torch.float16, torch.bfloat16):
            self.output = self.output.float()  # the losses (FFT included) in float32
        return self._losses()

    def optimize_parameters(self, current_iter):
        """One optimizer step on the (augmented) batch, in ``train.accum_iter`` forward/backward passes
        (:mod:`hint_plugin.models.accumulation`); each pass's non-finite loss is checked before its backward
        (see :meth:`_skip_or_stop`), and one such pass drops the whole step."""
        self._augment_batch(current_iter)
        self.optimizer_g.zero_grad()
        lq, gt = self.lq, self.gt
        parts = list(zip(micro_batches(lq, self.accum_iter), micro_batches(gt, self.accum_iter)))
        logged = OrderedDict()
        for index, (part_lq, part_gt) in enumerate(parts):
            self.lq, self.gt = part_lq, part_gt
            share = part_lq.shape[0] / lq.shape[0]
            with gradient_sync(self.net_g, last=index == len(parts) - 1):
                losses = self._forward_losses()
                l_total = sum(losses.values())
                finite = not self._nonfinite_anywhere(l_total)
                if finite:
                    self._backward(l_total * share if len(parts) > 1 else l_total)
            for name, value in losses.items():
                logged[name] = logged.get(name, 0) + value.detach() * share
            if not finite:
                self._skip_or_stop(current_iter, losses, l_total)
                break
        else:
            self._step()
        self.lq, self.gt = lq, gt

        self.log_dict = self.reduce_loss_dict(logged)
        if self.skip_nonfinite:
            self.log_dict['skipped_steps'] = self.skipped_steps
        if self.grad_scaler is not None:
            self.log_dict['amp_skipped_steps'] = self.amp_skipped_steps
            self.log_dict['loss_scale'] = self.grad_scaler.get_scale()

    # --------------------------------------------------------------------------------------- testing
    def feed_data(self, data):
        """SRModel's, remembering the input's file (``lq_path``) so that a test output can name its image."""
        super().feed_data(data)
        paths = data.get('lq_path')
        self.lq_name = paths[0] if isinstance(paths, (list, tuple)) and len(paths) == 1 else paths

    def test(self):
        """Restore ``self.lq``: padded to ``val.window_size`` (PAD_MULTIPLE), optionally in ``val.tile`` tiles
        (``size``, ``overlap``) merged by ``merge``: ``cosine`` ramps (default) or the authors' plain ``average``.
        An output holding a NaN or an infinity raises :class:`NonFiniteError` naming the image, before anything
        writes or scores it."""
        val_opt = self.opt.get('val') or {}
        tile = val_opt.get('tile') or {}
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = restore(net, self.lq, window_size=val_opt.get('window_size', PAD_MULTIPLE),
                                  tile=tile.get('size'), overlap=tile.get('overlap', 32), merge=tile.get('merge', 'cosine'))
        net.train(was_training)
        check_finite_output(self.output, getattr(self, 'lq_name', None) or 'the validation image')
