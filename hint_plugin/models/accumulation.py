"""Gradient accumulation: ``train.accum_iter: k`` runs each optimizer step as ``k`` forward/backward passes.

Design. The batch of one optimizer step is what the loader delivers (``batch_size_per_gpu``, or the
progressive ``mini_batch_sizes`` subset of it); :class:`~hint_plugin.models.hint_model.HINTModel` augments that
whole batch (progressive crop, mixup) and then splits it into ``k`` micro-batches, one forward and backward pass
each, every loss weighted by its micro-batch's share of the batch. So

* one BasicSR iteration is one optimizer step: ``current_iter``, the progressive schedule, the LR schedule,
  logging, checkpoints and the resumed epoch's batch count (:func:`hint_plugin.compat.resume_interrupted_epoch`)
  all count optimizer steps, unchanged;
* the gradient is the large batch's (equal up to rounding), and ``accum_iter`` changes only the memory a
  forward pass needs (about ``1/k`` of the activations), never the training recipe: the same options with
  another ``k`` train the same model;
* the exact resume needs nothing new: a step draws the same random numbers for every ``k``.

Exception: HINT's ``variant: official`` is not a per-image function. Its inter-layer cache takes statistics
over the batch (as the authors' code does), so every image's output depends on the others in its forward
pass and ``k`` micro-batches train on other statistics than one large batch (:func:`batch_coupling_note`).
``variant: refined`` uses per-image statistics, and there the equality holds.

The other design, ``k`` loader batches per optimizer step pulled by the model, would make BasicSR's iteration
count, epoch length and resume offset count loader batches instead, and mixup could only pair images within a
micro-batch.
"""
import contextlib


def micro_batches(batch, accum_iter):
    """``batch`` (a tensor, first dimension the images) split for ``accum_iter`` passes: ``torch.tensor_split`` into
    ``min(accum_iter, len(batch))`` consecutive parts whose sizes differ by at most one (6 images, 4 passes:
    2, 2, 1, 1). A batch smaller than ``accum_iter`` (a small progressive stage) gives one image per pass."""
    return batch.tensor_split(min(accum_iter, batch.shape[0]))


def gradient_sync(net, last):
    """Context for one micro-batch's forward and backward pass: DDP's ``no_sync`` (gradients accumulate locally,
    no all-reduce) for every pass but the last, whose backward all-reduces the accumulated gradients once."""
    if last or not hasattr(net, 'no_sync'):
        return contextlib.nullcontext()
    return net.no_sync()


def batch_coupling_note(network_opt, accum_iter):
    """A warning for the log when accumulating with a network whose images interact within a forward pass
    (HINT ``variant: official``: batch statistics in its inter-layer cache), else None."""
    if accum_iter == 1 or network_opt.get('type') != 'HINT' or network_opt.get('variant', 'official') != 'official':
        return None
    return (f'train.accum_iter: {accum_iter} with HINT variant official: its inter-layer cache averages over the '
            'images of a forward pass, so the micro-batches train on their own statistics and the step is not '
            'the large batch\'s (variant: refined has per-image statistics, where it is).')
