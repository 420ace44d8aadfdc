"""fp16 training (``train.amp: fp16``): PyTorch's ``GradScaler`` and the steps it skips.

float16 has a narrow range (largest value 65504, smallest normal 6e-5): small gradients underflow to zero
unless the loss is multiplied by a scale first. ``torch.amp.GradScaler`` does this and adapts the scale: a
step whose gradients hold an infinity or NaN (the scale was too large) is skipped and the scale halved; after
``growth_interval`` good steps it doubles. Such skips are normal while the scale finds its level (a few at the
start) and are counted apart from the non-finite *losses* of ``train.skip_nonfinite``, which no scale causes
or cures.
"""
import torch


def build_grad_scaler(device, options):
    """A ``torch.amp.GradScaler`` for ``device`` (CPU and CUDA both work in torch >= 2.3) with the keywords
    ``options`` (``train.grad_scaler``: ``init_scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``,
    checked by the schema)."""
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
