"""fp16 training (``train.amp: fp16``): PyTorch's ``GradScaler`` and the steps it skips.

float16 has a narrow range (largest value 65504, smallest normal 6e-5): small gradients underflow to zero
unless the loss is multiplied by a scale first. ``torch.amp.GradScaler`` does this and adapts the scale: a
step whose gradients hold an infinity or NaN (the scale was too large) is skipped and the scale halved; after
``growth_interval`` good steps it doubles. Such skips are normal while the scale finds its level (a few at the
start) and are counted apart from the non-finite *losses* of ``train.skip_nonfinite``, which no scale causes
or cures.
"""
import torch
from hint_plugin.errors import OptionsError

SCALER_KEYS = ('init_scale', 'growth_factor', 'backoff_factor', 'growth_interval')


def grad_scaler_options(setting, amp):
    """``train.grad_scaler``: keywords of ``torch.amp.GradScaler`` (``init_scale``, ``growth_factor``,
    ``backoff_factor``, ``growth_interval``), only with ``train.amp: fp16``. Returns a dict (may be empty)."""
    if setting is None:
        return {}
    if amp != 'fp16':
        raise OptionsError(f'train.grad_scaler is only used with train.amp: fp16 (train.amp is {amp!r})')
    if not isinstance(setting, dict) or set(setting) - set(SCALER_KEYS):
        raise OptionsError(f'train.grad_scaler must be a dict with keys among {list(SCALER_KEYS)}, got {setting!r}')
    return dict(setting)


def build_grad_scaler(device, options):
    """A ``torch.amp.GradScaler`` for ``device`` (CPU and CUDA both work in torch >= 2.3)."""
    return torch.amp.GradScaler(device.type, **options)


def scaled_step(scaler, optimizer, clip=None):
    """``scaler``'s optimizer step: unscale (then ``clip()``, gradient clipping on true gradients), step unless
    the gradients are not finite, update the scale. Returns whether the step was taken."""
    scaler.unscale_(optimizer)
    if clip is not None:
        clip()
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() >= scale  # the scale only shrinks when the step was skipped
