"""Runtime checks of what the network gives back (the option checks live in :mod:`hint_plugin.errors`)."""
from hint_plugin.errors import NonFiniteError


def check_finite_output(output, name):
    """Raise :class:`NonFiniteError` naming ``name`` (the image) and the count when the network's ``output`` (a
    tensor) holds a NaN or an infinity, so that it is neither written nor scored."""
    nonfinite = output.numel() - int(output.isfinite().sum())
    if nonfinite:
        raise NonFiniteError(f'{name}: the network\'s output holds {nonfinite} non-finite values (NaN or infinity) '
                             f'of {output.numel()}; not written or scored (the weights overflow: damaged, or from '
                             'a diverged training?)')
