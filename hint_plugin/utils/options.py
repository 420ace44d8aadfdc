"""Reading BasicSR option files and the network they describe, and checking ``network_g`` before a build;
errors name the file (where there is one), the key and the value."""
import inspect
import re
from collections.abc import Mapping

import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from hint_plugin.errors import OptionsError  # noqa: F401  (raised here; importable from here too)
from hint_plugin.utils.option_yaml import OptionLoader
from hint_plugin.utils.messages import did_you_mean


def read_options(path):
    """A BasicSR option file as a dict, read by :class:`~hint_plugin.utils.option_yaml.OptionLoader`: BasicSR's
    dialect (ordered mappings, ``!!float``) with YAML's safe loader; a ``!!python`` tag or a key given twice is an
    :class:`OptionsError` naming the file, line and key (nothing in the file runs)."""
    try:
        with open(path, encoding='utf-8') as file:
            options = yaml.load(file, Loader=OptionLoader)
    except OSError as error:
        raise OptionsError(f'cannot read option file {path}: {error.strerror or error}') from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise OptionsError(f'{path} is not a YAML option file: {" ".join(str(error).split())}') from None
    if not isinstance(options, Mapping):
        raise OptionsError(f'{path} holds no options (expected a mapping at the top level)')
    return dict(options)


def network_options(options, path):
    """The ``network_g`` of ``options`` (read from ``path``), which must name a ``type``."""
    network = options.get('network_g')
    if not isinstance(network, Mapping) or not network.get('type'):
        raise OptionsError(f'{path} has no network_g with a type (e.g. network_g: {{type: HINT, ...}})')
    return dict(network)


def network_from_options(path=None, **overrides):
    """Build ``network_g`` of the option file at ``path`` (default: ``HINT()``) with the non-None overrides."""
    network = network_options(read_options(path), path) if path is not None else {'type': 'HINT'}
    network.update({key: value for key, value in overrides.items() if value is not None})
    return build_network(network)


def check_network_options(network, key='network_g'):
    """Fail before anything is built when the ``key`` section of the options cannot build its network.

    Raises :class:`OptionsError` naming ``key.<option>``, the value and what was expected for: a missing or
    unregistered ``type``; an option the network's constructor does not take (not checked when it takes
    ``**kwargs``) or a required one left out; and whatever the constructor's own checks reject (wrong types,
    impossible values such as ``dim: 18``). For those the network is built once on the ``meta`` device, which
    allocates no memory and draws no random numbers; errors other than ``ValueError`` there (an operation
    ``meta`` cannot run) are left to the real build.
    """
    options = dict(network)
    type_name = options.pop('type', None)
    if not type_name:
        raise OptionsError(f'{key}.type is missing (e.g. {key}: {{type: HINT, ...}})')
    try:
        network_class = ARCH_REGISTRY.get(type_name)
    except KeyError:
        raise OptionsError(f'{key}.type = {type_name!r}: no such network (registered: '
                           f'{", ".join(sorted(name for name, _ in ARCH_REGISTRY))})') from None
    parameters = inspect.signature(network_class).parameters
    named = [name for name, parameter in parameters.items()
             if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)]
    if not any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters.values()):
        for option, value in options.items():
            if option not in named:
                raise OptionsError(f'{key}.{option} = {value!r}: {type_name} has no such option '
                                   f'({did_you_mean(option, named)})')
    missing = [name for name in named if parameters[name].default is parameters[name].empty and name not in options]
    if missing:
        raise OptionsError(f'{key}: {type_name} needs {", ".join(missing)} (no default)')
    try:
        with torch.device('meta'):
            network_class(**options)
    except ValueError as error:
        raise OptionsError(_name_the_option(str(error), key, type_name, named)) from None
    except Exception:  # noqa: BLE001  (not the options' fault: the real build reports it if it persists)
        pass


def _name_the_option(message, key, type_name, options):
    """``dim must be ...`` -> ``network_g.dim must be ...``; other messages get ``network_g (HINT): ``."""
    first_word = re.match(r'\w+', message)
    if first_word and first_word.group() in options:
        return f'{key}.{message}'
    return f'{key} ({type_name}): {message}'
