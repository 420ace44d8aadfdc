"""Runtime checks of what the network gives back (the option checks live in :mod:`hint_plugin.errors`)."""
import torch

from hint_plugin.errors import NonFiniteError

PROBE_SIZE = 16  # pixels of the probe image check_probe_output restores


def check_finite_output(output, name):
    """Raise :class:`NonFiniteError` naming ``name`` (the image) and the count when the network's ``output`` (a
    tensor) holds a NaN or an infinity, so that it is neither written nor scored."""
    nonfinite = output.numel() - int(output.isfinite().sum())
    if nonfinite:
        raise NonFiniteError(f'{name}: the network\'s output holds {nonfinite} non-finite values (NaN or infinity) '
                             f'of {output.numel()}; not written or scored (the weights overflow: damaged, or from '
                             'a diverged training?)')


def check_probe_output(net, channels, name):
    """Restore a seeded random ``(1, channels, 16, 16)`` probe image with ``net`` (in eval mode, no gradients) and
    raise :class:`NonFiniteError` (via :func:`check_finite_output`) when the output holds a NaN or an infinity:
    finite but far too large weights (a diverged training) overflow on any image, so a loader or exporter can
    refuse them before anything is written. A HINT's carried cache is reset afterwards: the probe leaves no trace."""
    probe = torch.rand(1, channels, PROBE_SIZE, PROBE_SIZE, generator=torch.Generator().manual_seed(0))
    device = next(net.parameters()).device
    with torch.no_grad():
        output = net.eval()(probe.to(device))
    if hasattr(net, 'reset_cache'):
        net.reset_cache()
    check_finite_output(output, f'{name}: a {PROBE_SIZE} x {PROBE_SIZE} probe image')
