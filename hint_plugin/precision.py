"""Inference precision: float32, or bfloat16 / float16 under autocast where the device runs them.

``fp32`` is the network as it is. ``bf16`` and ``fp16`` run the convolutions and matrix products under
``torch.autocast`` with the weights kept in float32; HINT's attention keeps its token norms, channel
correlations and softmax in float32 whatever the precision (:mod:`hint_plugin.archs.hmha_arch`), so sums over
all tokens neither overflow (float16) nor lose their precision (bfloat16).

    net = with_precision(load_network(...), 'bf16', 'cpu')  # same inputs and outputs, float32 in and out
"""
import torch
from torch import nn

from hint_plugin.errors import OptionsError

PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


class PrecisionError(OptionsError):
    """A precision that is unknown or that the device cannot run; the message says which and why."""


def _probe(device, dtype):
    """Run a convolution and a matrix product under autocast on ``device``; the reason they fail, else None."""
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
            x = torch.ones(1, 2, 4, 4, device=device)
            out = nn.functional.conv2d(x, torch.ones(2, 2, 1, 1, device=device))
            out = out.flatten(1) @ torch.ones(32, 2, device=device)
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    if out.dtype != dtype:
        return f'autocast on {device.type} ran the product in {out.dtype}'
    return None


def check_precision(precision, device='cpu'):
    """The dtype of ``precision`` (``fp32``, ``bf16`` or ``fp16``) after checking ``device`` can run it.

    Raises :class:`PrecisionError` for an unknown name, for bfloat16 on a CUDA device without it (before
    Ampere), and wherever autocast cannot run a convolution and a matrix product in the dtype.
    """
    if precision not in PRECISIONS:
        raise PrecisionError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
    dtype, device = PRECISIONS[precision], torch.device(device)
    if dtype == torch.float32:
        return dtype
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise PrecisionError(f'{precision} on {device}: CUDA is not available on this machine')
    if device.type == 'cuda' and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(False):
        raise PrecisionError(f'{device} has no bfloat16 support (CUDA compute capability 8.0 or later needed); '
                             'use fp16 or fp32')
    reason = _probe(device, dtype)
    if reason is not None:
        raise PrecisionError(f'{precision} is not available on {device}: {reason}')
    return dtype


class WithPrecision(nn.Module):
    """``net`` run under ``torch.autocast`` in ``precision`` (off for ``fp32``); the output is cast back to the
    input's dtype (same form out as in).

    ``(B, C, H, W) -> net's output shape``. Attributes of ``net`` such as ``inp_channels`` stay reachable as
    ``wrapper.net.inp_channels``.
    """

    def __init__(self, net, precision='fp32', device='cpu'):
        super().__init__()
        self.dtype = check_precision(precision, device)
        self.net, self.precision, self.device_type = net, precision, torch.device(device).type

    def forward(self, x):
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = self.net(x)
        return out.to(x.dtype)


def with_precision(net, precision='fp32', device='cpu'):
    """``net`` itself for ``fp32``, else a :class:`WithPrecision` around it (checked against ``device``)."""
    wrapped = WithPrecision(net, precision, device)  # checks the precision against the device once
    return net if wrapped.dtype == torch.float32 else wrapped
