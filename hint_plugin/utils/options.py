"""Reading BasicSR option files and the network they describe; errors name the file and the key."""
from collections.abc import Mapping

import yaml
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml


class OptionsError(ValueError):
    """An option file that cannot be read or lacks what is needed; the message names file and key."""


def read_options(path):
    """A BasicSR option file as a dict (BasicSR's ordered YAML loader, so ``!!float`` behaves the same)."""
    try:
        with open(path, encoding='utf-8') as file:
            options = yaml.load(file, Loader=ordered_yaml()[0])
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
