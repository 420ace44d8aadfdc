"""Parameters and multiply-accumulates (MACs) of a network with mmengine's analysis.

Two totals are reported: 2-D convolutions only (the convention of the HINT paper and of Restormer-lineage
tables) and the full count, which adds the Conv1d cache layers of QKCU (computed as matrix products), the
attention products and the channel-correlation products of HMHA's re-ordering.
"""
from collections import Counter

import torch
from torch import nn

try:  # the [complexity] extra: only this module needs mmengine
    from mmengine.analysis import FlopAnalyzer, parameter_count
    from mmengine.analysis.jit_handles import conv_flop_jit, get_shape
    from mmengine.analysis.print_helper import complexity_stats_table
except ImportError as error:
    raise ImportError(f"complexity counts need mmengine ({error}): pip install -e '.[complexity]', or the pinned "
                      'set in requirements/lock.txt') from None


def _conv_macs_by_dimension(inputs, outputs):
    """mmengine's convolution count, filed under ``conv1d`` / ``conv2d`` / ... by the weight's dimensions (the
    paper's convention counts 2-D convolutions, whether called through modules or functionally)."""
    dimensions = len(get_shape(inputs[1])) - 2
    return Counter({f'conv{dimensions}d': sum(conv_flop_jit(inputs, outputs).values())})


def analyze(net, height=256, width=256, batch=1, max_depth=2):
    """Count ``net``'s parameters and MACs on a ``(batch, C_in, height, width)`` input.

    Returns a dict: ``params``, ``macs_total``, ``macs_conv2d``, ``macs_by_operator`` and ``table`` (per module,
    down to ``max_depth``).
    """
    net = net.eval()
    in_channels = next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels
    image = torch.rand(batch, in_channels, height, width)
    analyzer = FlopAnalyzer(net, (image, ))
    analyzer.set_op_handle('aten::_convolution', _conv_macs_by_dimension)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    by_operator = dict(analyzer.by_operator())
    return {
        'params': parameter_count(net)[''],
        'macs_total': analyzer.total(),
        'macs_conv2d': by_operator.get('conv2d', 0),
        'macs_by_operator': by_operator,
        'table': complexity_stats_table(analyzer, max_depth=max_depth, show_param_shapes=False),
    }


def summary(result, height, width):
    """Human-readable lines for :func:`analyze`'s result."""
    lines = [f'input {height}x{width}', f'parameters: {result["params"] / 1e6:.2f} M',
             f'MACs, 2-D convolutions only (paper convention): {result["macs_conv2d"] / 1e9:.1f} G',
             f'MACs, all counted operators: {result["macs_total"] / 1e9:.1f} G']
    lines += [f'  {name}: {macs / 1e9:.2f} G' for name, macs in sorted(result['macs_by_operator'].items())]
    return '\n'.join(lines)
