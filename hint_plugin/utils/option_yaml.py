"""The YAML dialect of option files: YAML's safe loader with ordered mappings, as BasicSR reads them, minus what
could run code or lose a value.

BasicSR 1.4.2 reads option files with PyYAML's full ``Loader`` (``basicsr.utils.options.ordered_yaml``), which
runs ``!!python/object/apply:os.system [...]`` wherever it sits in the file, and keeps only the last of two equal
keys. :class:`OptionLoader` gives the same values for plain YAML (the same resolver: ``!!float 1e-4`` is a float,
bare ``1e-4`` a string; mappings are ``OrderedDict``), and refuses, before constructing anything, any tag that is
not a plain YAML type and any key given twice in one mapping: :class:`OptionsError` names the file, line, key and
tag.
"""
from collections import OrderedDict

import yaml

from hint_plugin.errors import OptionsError

YAML_TAG = 'tag:yaml.org,2002:'
MERGE_TAG = YAML_TAG + 'merge'


def construct_ordered_mapping(loader, node):
    """A mapping node as an ``OrderedDict`` (BasicSR's dialect), ``<<`` merge keys resolved as YAML defines."""
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


class OptionLoader(yaml.SafeLoader):
    """``yaml.load(stream, Loader=OptionLoader)``: the option-file dialect (see the module docstring)."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        refuse_unsafe_nodes(self, node)
        return self.construct_document(node)


OptionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_ordered_mapping)
PLAIN_TAGS = frozenset(tag for tag in OptionLoader.yaml_constructors if tag) | {MERGE_TAG}


def shown_tag(tag):
    """``tag:yaml.org,2002:python/name:os.system`` -> ``!!python/name:os.system``."""
    return '!!' + tag[len(YAML_TAG):] if tag.startswith(YAML_TAG) else tag


def where(node, path):
    """``<file>, line N (key a.b.c)`` for ``node`` reached through the keys ``path``."""
    place = f'key {".".join(path)}' if path else 'the top level'
    return f'{node.start_mark.name}, line {node.start_mark.line + 1} ({place})'


def refuse_unsafe_nodes(loader, root):
    """Raise :class:`OptionsError` for the first node under ``root`` whose tag is not a plain YAML type, or the
    first key given twice in one mapping; nothing is constructed but keys already checked."""
    seen = set()
    pending = [(root, [])]
    while pending:
        node, path = pending.pop()
        if id(node) in seen:  # an alias of a node already checked (also keeps recursive aliases finite)
            continue
        seen.add(id(node))
        if node.tag not in PLAIN_TAGS:
            reason = ('would run Python code; option files are read with YAML\'s safe loader'
                      if node.tag.startswith(YAML_TAG + 'python/') else 'is not a plain YAML type')
            raise OptionsError(f'{where(node, path)}: the tag {shown_tag(node.tag)} {reason}; '
                               'write the value itself (a number, string, list or mapping)')
        if isinstance(node, yaml.MappingNode):
            pending.extend(reversed(list(checked_pairs(loader, node, path))))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, path[:-1] + [f'{path[-1] if path else ""}[{index}]'])
                           for index, item in reversed(list(enumerate(node.value))))


def checked_pairs(loader, node, path):
    """``(value node, its key path)`` of a mapping node whose keys are plain and each given once (merge keys
    ``<<`` pass: what they bring in may be overridden, as YAML defines)."""
    first_line = {}
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:
            yield value_node, path
            continue
        refuse_unsafe_nodes(loader, key_node)
        key = loader.construct_object(key_node, deep=True)
        name = '.'.join([*path, str(key)])
        try:
            earlier = first_line.get(key)
        except TypeError:  # a list or mapping as a key: not an option name
            raise OptionsError(f'{where(key_node, path)}: a key must be a plain value, not {type(key).__name__}') \
                from None
        if earlier is not None:
            raise OptionsError(f'{key_node.start_mark.name}, line {key_node.start_mark.line + 1}: key {name} is '
                               f'given twice (first on line {earlier}); YAML would keep only the last, so remove '
                               'one of them')
        first_line[key] = key_node.start_mark.line + 1
        yield value_node, [*path, str(key)]


class OptionDumper(yaml.SafeDumper):
    """``yaml.dump(options, Dumper=OptionDumper)``: writes options in the same dialect (ordered mappings as plain
    mappings, in their order; nothing Python-specific)."""


OptionDumper.add_representer(OrderedDict, lambda dumper, data: dumper.represent_dict(data.items()))
