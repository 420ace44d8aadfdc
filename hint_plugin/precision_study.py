"""What a lower precision changes in HINT's output: PSNR against float32, largest difference, time per image.

HINT re-orders its channels by their correlations (:func:`hint_plugin.archs.hmha_arch.channel_order`), which
is a discontinuous function of the features: where two channels correlate almost equally, any rounding can swap
them and move a channel into another head. :class:`ChannelOrders` records the float32 pass's orders and replays
them, which separates the arithmetic's error (orders replayed) from the swaps (orders recomputed).
"""
import contextlib
import math
import time

import torch

import hint_plugin.archs.hmha_arch as hmha_arch
from hint_plugin.precision import PRECISIONS, with_precision


class ChannelOrders:
    """Record HMHA's channel orders during one pass and replay them, in the same sequence, in later passes."""

    def __init__(self):
        self.orders = []

    @contextlib.contextmanager
    def _patched(self, function):
        original = hmha_arch.channel_order
        hmha_arch.channel_order = function
        try:
            yield self
        finally:
            hmha_arch.channel_order = original

    def recording(self):
        """A context in which every channel order computed is also appended to ``orders``."""
        original = hmha_arch.channel_order

        def record(tokens, *args):
            order = original(tokens, *args)
            self.orders.append(order)
            return order

        return self._patched(record)

    def replaying(self):
        """A context in which HMHA takes its orders from ``orders``, in sequence, instead of computing them."""
        replay = iter(self.orders)

        def replayed(tokens, *args):
            try:
                return next(replay)
            except StopIteration:
                raise RuntimeError('more attention blocks ran than orders were recorded') from None

        return self._patched(replayed)


def psnr(output, reference):
    """PSNR in dB of ``output`` against ``reference``, both clamped to [0, 1]; inf when they are equal."""
    mse = (output.float().clamp(0, 1) - reference.float().clamp(0, 1)).square().mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


def precision_rows(net, images, precisions=tuple(PRECISIONS), device='cpu', same_order=False):
    """One row per precision: mean PSNR against float32 over ``images``, largest absolute difference, mean
    seconds per image (after one untimed warm-up pass), whether every output is finite.

    Args:
        net (nn.Module): the network in eval mode, float32, on ``device``.
        images (list of Tensor): ``(1, C, H, W)`` float32 images in [0, 1].
        precisions (sequence of str): names of :data:`hint_plugin.precision.PRECISIONS`.
        device (str | torch.device): where to run.
        same_order (bool): replay the float32 pass's channel orders in the other precisions.
    """
    device = torch.device(device)
    references, orders, rows = [], [], []
    with torch.inference_mode():
        for image in images:
            recorder = ChannelOrders()
            with recorder.recording():
                references.append(net(image.to(device)).float().cpu())
            orders.append(recorder)
        for precision in precisions:
            runner = with_precision(net, precision, device)
            with orders[0].replaying() if same_order else contextlib.nullcontext():
                runner(images[0].to(device))  # warm-up, not timed
            scores, largest, seconds, finite = [], 0.0, 0.0, True
            for image, reference, recorder in zip(images, references, orders):
                context = recorder.replaying() if same_order else contextlib.nullcontext()
                with context:
                    start = time.perf_counter()
                    output = runner(image.to(device))
                    if device.type == 'cuda':
                        torch.cuda.synchronize(device)
                    seconds += time.perf_counter() - start
                output = output.float().cpu()
                finite = finite and bool(torch.isfinite(output).all())
                scores.append(psnr(output, reference))
                largest = max(largest, (output - reference).abs().max().item())
            rows.append(dict(precision=precision, psnr=sum(scores) / len(scores), max_abs=largest,
                             seconds=seconds / len(images), finite=finite))
    return rows


def format_rows(rows):
    """A Markdown table of :func:`precision_rows`."""
    lines = ['| precision | PSNR vs fp32 (dB) | max abs diff | s / image | finite |', '|---|---|---|---|---|']
    for row in rows:
        lines.append(f'| {row["precision"]} | {row["psnr"]:.2f} | {row["max_abs"]:.2e} | {row["seconds"]:.3f} | '
                     f'{"yes" if row["finite"] else "NO"} |')
    return '\n'.join(lines)
