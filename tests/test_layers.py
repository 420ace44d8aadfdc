"""The package's imports go one way down, with no circle: tools -> hint_plugin.cli -> package modules -> models,
data, losses, metrics -> utils -> archs -> errors (``python ../shared/tools/check_layers.py`` prints the same findings).

Imports are read from the source (``ast``), at module level and inside functions alike: a lazy import still ties
two modules together. A package's ``__init__`` is its face (it imports its modules to register them) and is left
out of the circles.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'hint_plugin'
# lower layers first: a module may import from its own layer and the layers before it
LAYERS = (('errors',), ('archs',), ('utils',), ('data', 'losses', 'metrics', 'models'))


def package_modules():
    """``{dotted module name: path}`` for every ``.py`` file of the package (``pkg.__init__`` as ``pkg``)."""
    modules = {}
    for path in PACKAGE.rglob('*.py'):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return modules


def imported_modules(name, path, modules):
    """The package's modules that ``name`` (at ``path``) imports anywhere in its source."""
    is_package = path.name == '__init__.py'
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative: from the module's package, one level up per extra dot
                anchor = name.split('.')[:len(name.split('.')) - node.level + is_package]
                base = '.'.join(anchor + ([base] if base else []))
            targets = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base for alias in node.names]
        else:
            continue
        for target in targets:  # `import a.b.c` imports a, a.b and a.b.c: the deepest module of the package counts
            while target and target not in modules:
                target = target.rpartition('.')[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    modules = package_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def layer(name):
    """The index in LAYERS of the module ``name``, or None for the package's top-level modules (the top)."""
    parts = name.split('.')
    top = parts[1] if len(parts) > 1 else None
    return next((index for index, names in enumerate(LAYERS) if top in names), None)


def circles(graph):
    """The groups of modules (``__init__`` files left out) that import each other in a circle."""
    edges = {name: {target for target in targets if target in graph and not is_init(target)}
             for name, targets in graph.items() if not is_init(name)}
    reach = {name: set() for name in edges}
    for start in edges:
        stack = list(edges[start])
        while stack:
            current = stack.pop()
            if current not in reach[start]:
                reach[start].add(current)
                stack.extend(edges[current])
    groups = {frozenset({name} | {other for other in reach[name] if name in reach[other]})
              for name in edges if name in reach[name]}
    return sorted(sorted(group) for group in groups)


def is_init(name):
    return (PACKAGE.parent / name.replace('.', '/') / '__init__.py').exists()


def upward_imports(graph):
    """``(importer, imported)`` pairs where a module imports from a layer above its own."""
    found = set()
    for name, targets in graph.items():
        if is_init(name) or layer(name) is None:
            continue
        for target in targets:
            if target != 'hint_plugin' and (layer(target) is None or layer(target) > layer(name)):
                found.add((name, target))
    return found


def test_no_module_imports_another_in_a_circle():
    assert circles(import_graph()) == []


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(import_graph()) == set()


def test_the_package_never_imports_the_commands():
    """tools/ and the command lines (hint_plugin.cli) sit on top: they call into the package, never the other way
    round."""
    offenders, graph = set(), import_graph()
    for name, path in package_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module or ''] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders |= {(name, module) for module in modules if module.split('.')[0] == 'tools'}
        if not name.startswith('hint_plugin.cli'):
            offenders |= {(name, module) for module in graph[name] if module.startswith('hint_plugin.cli')}
    assert offenders == set()


def test_the_walk_sees_lazy_relative_and_dotted_imports(tmp_path):
    """The reading itself: a function-level import, a relative one and ``import a.b`` all count."""
    source = tmp_path / 'hint_plugin' / 'utils' / 'x.py'
    source.parent.mkdir(parents=True)
    source.write_text('import hint_plugin.errors\n'
                      'def f():\n    from ..models import hint_model\n    from .tiling import restore\n')
    modules = {'hint_plugin.errors': None, 'hint_plugin.models': None, 'hint_plugin.models.hint_model': None,
               'hint_plugin.utils.tiling': None, 'hint_plugin.utils.x': source}
    found = imported_modules('hint_plugin.utils.x', source, modules)
    assert found == {'hint_plugin.errors', 'hint_plugin.models.hint_model', 'hint_plugin.utils.tiling'}
    graph = {'hint_plugin.utils.x': found, 'hint_plugin.models.hint_model': {'hint_plugin.utils.x'},
             'hint_plugin.errors': set(), 'hint_plugin.utils.tiling': set()}
    assert circles(graph) == [['hint_plugin.models.hint_model', 'hint_plugin.utils.x']]
    assert upward_imports(graph) == {('hint_plugin.utils.x', 'hint_plugin.models.hint_model')}
