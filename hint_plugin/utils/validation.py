"""Argument checks that name the option, the value and what was expected."""
from numbers import Integral

from hint_plugin.errors import NonFiniteError, OptionsError


def check_int(name, value, minimum):
    """``value`` must be an int (not a bool) >= ``minimum``; else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise OptionsError(f'{name} must be an integer >= {minimum}, got {value!r}')


def check_int_list(name, value, length, minimum):
    """``value`` must be a list/tuple of ``length`` ints >= ``minimum``."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise OptionsError(f'{name} must be a list of {length} integers, got {value!r}')
    for i, item in enumerate(value):
        check_int(f'{name}[{i}]', item, minimum)


def check_bool(name, value):
    """``value`` must be a real bool (YAML true/false), not a string or number."""
    if not isinstance(value, bool):
        raise OptionsError(f'{name} must be true or false, got {value!r}')


def check_finite_output(output, name):
    """Raise :class:`NonFiniteError` naming ``name`` (the image) and the count when the network's ``output`` (a
    tensor) holds a NaN or an infinity, so that it is neither written nor scored."""
    nonfinite = output.numel() - int(output.isfinite().sum())
    if nonfinite:
        raise NonFiniteError(f'{name}: the network\'s output holds {nonfinite} non-finite values (NaN or infinity) '
                             f'of {output.numel()}; not written or scored (the weights overflow: damaged, or from '
                             'a diverged training?)')
