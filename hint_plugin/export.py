"""ONNX export of HINT with dynamic height and width, checked against PyTorch with onnxruntime.

Needs the optional extra ``[export]`` (``pip install -e .[export]``: onnx, onnxruntime and onnxscript, which
PyTorch's exporter uses). From Python::

    from hint_plugin.export import check_onnx, export_onnx
    export_onnx(net, 'hint.onnx')                          # input (1, 3, H, W) for any H, W >= 1
    check_onnx('hint.onnx', net, [(37, 45), (64, 80)])     # onnxruntime vs PyTorch, max |difference| <= 1e-4

The command line is ``tools/export_onnx.py``.

Exporter and opset
    ``torch.onnx.export(..., dynamo=True)``, PyTorch's default exporter (torch.export, then onnxscript), at
    opset :data:`DEFAULT_OPSET` = 18 (the exporter's own; ``--opset`` 18 to 23 are converted from it). The legacy
    TorchScript exporter (``exporter='torchscript'``, opsets 14 to 20, deprecated by PyTorch) gives the same
    function; it is faster for tiny networks (about 10 s against 45 s for the test network) but far slower for
    the released size (about 22 min against 5 to 8 min, one thread of a shared CPU), whose graph its passes handle
    badly (and onnxruntime then needs over 10 min to load the model).

What the export does besides calling the exporter (the exported function is the network's):
    * HINT pads any H, W to a multiple of 8 with ``F.pad``, choosing reflect or replicate padding in Python
      from the size: an exporter fixes that choice at the example's size, and onnxruntime refuses reflect
      padding wider than the image. :class:`PaddedHINT` pads the same way by gathering the same rows and
      columns (a copy of the same pixels, the choice being made in the graph), runs the network on the padded
      image, for which HINT's own padding is a no-op, and crops back: bit-identical to the network in PyTorch.
    * The TorchScript exporter refuses ``F.adaptive_avg_pool2d`` to a size that does not divide the input
      (HINT pools its ``(C, C)`` inter-layer cache to head sizes 1:2:2:3 of C, e.g. 384 to 144). While
      exporting with it, :func:`exportable_ops` replaces that function by its definition in basic operations,
      :func:`adaptive_avg_pool2d`; nothing else of the network changes. (HMHA's channel order is written
      in basic operations in the network itself, :func:`hint_plugin.archs.hmha_arch.mean_channel_correlation`.)

Limits
    * Height and width are dynamic, any size from 1 up (the output is named like the input, ``height`` x
      ``width``); the batch is fixed at export (``batch``, default 1). The ``official`` variant couples the
      images of a batch through batch-mean statistics, so one image per run is its proper use (as tiled
      inference does).
    * float32, exported on the CPU; the input has the network's ``inp_channels`` channels.
    * HINT is not a continuous function of its input, so "within 1e-4" holds only away from its jumps:
      - the channel order is a ``torch.sort`` (``TopK`` in ONNX). Exact ties and NaN correlations (inputs up
        to 8x8, whose deepest level has a single token; two tokens give correlations of +-1; constant areas
        give zero-variance channels) are ordered differently by PyTorch and onnxruntime (PyTorch's own order
        is implementation-defined there);
      - the ``official`` variant's cache update floor-divides resized attention maps (as the released
        checkpoints do), so a map value that crosses 0 by rounding changes the cache by a whole step. On the
        released size with random weights, PyTorch float32 and float64 differ by 0.36 at 37x45, and onnxruntime
        agrees with float64 (3e-7) but not with float32. The ``refined`` variant does not jump: float32 and
        float64 agree to 7e-7, and its released-size export matches PyTorch to 1e-6 (37x45, 64x80, 17x3).
      :func:`check_onnx` names these causes when a HINT does not match.
"""
import contextlib
import importlib
import os
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.padding import PAD_MULTIPLE
from hint_plugin.errors import ExportError

DEFAULT_OPSET = 18
EXPORTERS = ('dynamo', 'torchscript')
DEFAULT_EXPORTER = 'dynamo'
OPSETS = {'dynamo': (18, 23), 'torchscript': (14, 20)}
DEFAULT_EXAMPLE_SIZE = (64, 64)
DEFAULT_CHECK_SIZES = ((37, 45), (64, 80))
DEFAULT_TOLERANCE = 1e-4
INPUT_NAME, OUTPUT_NAME = 'input', 'output'


def require(module):
    """Import ``module`` of the ``[export]`` extra, or raise an :class:`ExportError` that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ExportError(f'ONNX export needs {module.split(".")[0]} ({error}): install the export extra, '
                          "pip install -e '.[export]' (onnx, onnxruntime, onnxscript), or the pinned set in "
                          'requirements/lock.txt') from None


# --------------------------------------------------------------------------------------------- exportable ops
def _pool_matrix(size_in, size_out, like):
    """``(size_out, size_in)`` averaging weights of adaptive average pooling along one axis."""
    matrix = torch.zeros(size_out, size_in, dtype=like.dtype, device=like.device)
    for i in range(size_out):
        start, end = i * size_in // size_out, -(-(i + 1) * size_in // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool2d(x, output_size):
    """``F.adaptive_avg_pool2d`` for inputs of a fixed spatial size, as two products with averaging matrices.

    The same windows as PyTorch's (``floor(i * in / out)`` to ``ceil((i + 1) * in / out)``), for any sizes,
    not only divisors. HINT's inter-layer cache has a size that depends on the channel count alone.
    """
    height, width = (int(size) for size in x.shape[-2:])
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    out_h, out_w = out_h or height, out_w or width  # None keeps the input size
    return _pool_matrix(height, out_h, x) @ x @ _pool_matrix(width, out_w, x).transpose(0, 1)


@contextlib.contextmanager
def exportable_ops(exporter=DEFAULT_EXPORTER):
    """For the TorchScript exporter, ``F.adaptive_avg_pool2d`` is replaced within the block by its exportable
    definition above; the original comes back on leaving it. The dynamo exporter needs nothing replaced."""
    saved = F.adaptive_avg_pool2d
    if exporter == 'torchscript':
        F.adaptive_avg_pool2d = adaptive_avg_pool2d
    try:
        yield
    finally:
        F.adaptive_avg_pool2d = saved


# --------------------------------------------------------------------------------------------- padding wrapper
def _pad_positions(size, multiple, reference):
    """Positions ``0 .. ceil(size / multiple) * multiple - 1`` and which of them lie inside ``size``."""
    positions = torch.arange((size + multiple - 1) // multiple * multiple, device=reference.device)
    return positions, positions < size


class PaddedHINT(nn.Module):
    """Export-only wrapper: ``forward(x) == net(x)``, with HINT's padding done where an exporter can keep it.

    It pads the bottom and right of ``x`` to a multiple of ``multiple`` exactly as
    :func:`hint_plugin.archs.padding.pad_to_multiple` does (reflect when both pads are smaller than the image,
    replicate otherwise) but by gathering rows and columns, the choice being made in the graph; then the network
    runs on the padded image, for which its own padding is a no-op, and the output is cropped to ``H x W``.
    """

    def __init__(self, net, multiple=PAD_MULTIPLE):
        super().__init__()
        self.net = net
        self.multiple = multiple

    def forward(self, x):
        height, width = x.shape[-2:]
        rows, rows_inside = _pad_positions(height, self.multiple, x)
        cols, cols_inside = _pad_positions(width, self.multiple, x)
        # reflect needs pad < size on both axes: fewer padded positions than inside ones
        reflect = (rows_inside.logical_not().sum() < rows_inside.sum()) \
            & (cols_inside.logical_not().sum() < cols_inside.sum())
        row_index = torch.where(reflect, torch.where(rows_inside, rows, 2 * (height - 1) - rows),
                                rows.clamp(max=height - 1))
        col_index = torch.where(reflect, torch.where(cols_inside, cols, 2 * (width - 1) - cols),
                                cols.clamp(max=width - 1))
        padded = x.index_select(2, row_index).index_select(3, col_index)
        return self.net(padded)[..., :height, :width]


def exportable(net):
    """The module to export for ``net``: :class:`PaddedHINT` for a HINT, the network itself otherwise."""
    return PaddedHINT(net) if isinstance(net, HINT) else net


# --------------------------------------------------------------------------------------------- export and check
def input_channels(net):
    """The channel count ``net`` takes: ``inp_channels``, else the first 2-D convolution's input channels."""
    channels = getattr(net, 'inp_channels', None)
    if channels is None:
        channels = next(module for module in net.modules() if isinstance(module, nn.Conv2d)).in_channels
    return channels


def _device(net):
    parameter = next(net.parameters(), None)
    return parameter.device if parameter is not None else torch.device('cpu')


def _check_opset(exporter, opset):
    if exporter not in EXPORTERS:
        raise ExportError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    low, high = OPSETS[exporter]
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise ExportError(f'the {exporter} exporter supports opsets {low} to {high}, got {opset!r}')


def _check_size(name, size):
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)):
        raise ExportError(f'{name} must be (height, width), two positive integers, got {size!r}')
    return tuple(size)


def export_onnx(net, path, opset=DEFAULT_OPSET, example_size=DEFAULT_EXAMPLE_SIZE, batch=1, exporter=DEFAULT_EXPORTER):
    """Export ``net`` (CPU, float32) to the ONNX file ``path`` with dynamic height and width; returns ``path``.

    Args:
        net (nn.Module): HINT (wrapped in :class:`PaddedHINT`) or another network taking ``(B, C, H, W)``.
        path (str): the ``.onnx`` file to write (its folder is created).
        opset (int): ONNX opset, :data:`OPSETS` gives each exporter's range. Default: 18.
        example_size (tuple): ``(H, W)`` of the example input the network is traced with; any size works for
            HINT, the exported model takes any other. Default: (64, 64).
        batch (int): the batch size, fixed in the exported model. Default: 1.
        exporter (str): ``'dynamo'`` (torch.export, PyTorch's default) or ``'torchscript'`` (legacy).

    The model has one input ``'input'`` ``(batch, C, height, width)`` and one output ``'output'``; the network
    is exported in eval mode (its mode is restored afterwards) and the file is checked with ``onnx.checker``.
    """
    _check_opset(exporter, opset)
    example_size = _check_size('example_size', example_size)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ExportError(f'batch must be a positive integer, got {batch!r}')
    onnx = require('onnx')
    if exporter == 'dynamo':
        require('onnxscript')
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)

    example = torch.rand(batch, input_channels(net), *example_size, generator=torch.Generator().manual_seed(0))
    example = example.to(_device(net))
    module = exportable(net)
    training = net.training
    net.eval()
    dynamic = {2: 'height', 3: 'width'}
    try:
        with torch.no_grad(), exportable_ops(exporter), warnings.catch_warnings():
            # tracer and deprecation chatter; the result is checked by onnx.checker and check_onnx instead
            warnings.simplefilter('ignore')
            if exporter == 'dynamo':
                torch.onnx.export(module, (example, ), path, dynamo=True, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=(dynamic, ),
                                  external_data=False, verbose=False)
            else:
                torch.onnx.export(module, (example, ), path, dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic})
    except Exception as error:  # the exporters raise many kinds; one readable error for the caller
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise ExportError(f'torch.onnx.export ({exporter} exporter) failed: {type(error).__name__}: {first}') \
            from error
    finally:
        net.train(training)
    model = onnx.load(path)
    if _name_output_axes(model, dynamic):
        onnx.save(model, path)
    onnx.checker.check_model(path)
    return path


def _name_output_axes(model, names):
    """Give the output's dynamic axes the input's names (torch.export calls them ``Min(height, ...)``).

    Only names change: the output has the input's height and width. Returns whether anything changed.
    """
    changed = False
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        for axis, name in names.items():
            if axis < len(dims) and dims[axis].dim_param and dims[axis].dim_param != name:
                dims[axis].dim_param = name
                changed = True
    return changed


def _few_tokens(height, width, multiple=PAD_MULTIPLE):
    """Whether HINT's deepest level has at most two tokens for an ``height x width`` image (up to 8x16)."""
    return -(-height // multiple) * -(-width // multiple) <= 2


def _discontinuity_hint(net, sizes):
    """Why a HINT may not match on ``sizes`` (see the module's Limits), or ''."""
    rules = [module.rule for module in net.modules() if hasattr(module, 'rule')]
    reasons = []
    if rules and any(_few_tokens(*size) for size in sizes):
        reasons.append('images up to 8x16 leave one or two tokens at the deepest level, whose channel correlations '
                       'are NaN or +-1: channels tie, and PyTorch and onnxruntime order ties differently')
    if any(not rule.true_division for rule in rules):
        reasons.append('the official variant floor-divides its attention maps in the cache update, so a value that '
                       'crosses 0 by rounding changes the output by a step, and PyTorch float32 itself may differ '
                       'from float64 as much; the refined variant has no such step')
    return f' ({"; ".join(reasons)})' if reasons else ''


def check_onnx(path, net, sizes=DEFAULT_CHECK_SIZES, batch=None, atol=DEFAULT_TOLERANCE, seed=0):
    """Run the ONNX model at ``path`` with onnxruntime and ``net`` with PyTorch on random images of ``sizes``.

    Args:
        path (str): the ONNX file.
        net (nn.Module): the network it was exported from (run in eval mode, without gradients).
        sizes (iterable of (H, W)): image sizes to compare on.
        batch (int | None): batch size; None takes the model's (fixed) batch.
        atol (float): largest allowed absolute difference. Default: 1e-4.
        seed (int): seed of the random images in [0, 1].

    Returns a list of ``((H, W), max_abs_difference)``; raises :class:`ExportError` when a shape differs or a
    difference exceeds ``atol`` (all sizes are compared first, the message lists the failures).
    """
    ort = require('onnxruntime')
    import numpy as np

    sizes = [_check_size('a check size', tuple(size)) for size in sizes]
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    model_input = session.get_inputs()[0]
    if batch is None:
        batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else 1
    generator = torch.Generator().manual_seed(seed)
    training = net.training
    net.eval()
    results, failures, failed_sizes = [], [], []
    try:
        for height, width in sizes:
            image = torch.rand(batch, input_channels(net), height, width, generator=generator)
            with torch.no_grad():
                expected = net(image.to(_device(net))).float().cpu().numpy()
            found = session.run(None, {model_input.name: image.numpy()})[0]
            if found.shape != expected.shape:
                failures.append(f'{height}x{width}: output shape {found.shape}, PyTorch {expected.shape}')
                continue
            difference = float(np.abs(found.astype(np.float64) - expected).max())
            if not difference <= atol:  # NaN fails too
                failures.append(f'{height}x{width}: max |difference| {difference:.3g} > {atol:g}')
                failed_sizes.append((height, width))
            results.append(((height, width), difference))
    finally:
        net.train(training)
    if failures:
        raise ExportError(f'{path} does not match PyTorch: ' + '; '.join(failures)
                          + _discontinuity_hint(net, failed_sizes))
    return results
