"""The checkout's layout: ``tools/`` holds the commands a user runs, studies live apart in ``studies/``, nothing
edits ``sys.path`` (the package is installed), and every console script of ``pyproject.toml`` resolves to the
``main`` that its ``tools/`` script runs."""
import ast
import importlib

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

from conftest import REPO

USER_COMMANDS = {'train.py', 'test.py', 'inference.py', 'create_lmdb.py', 'export_onnx.py', 'convert_weights.py',
                 'complexity.py', 'demo.py', 'dist_train.sh', 'dist_test.sh'}
STUDIES = {'benchmark.py', 'variant_study.py', 'speed_devices.py', 'cache_study.py', 'precision_table.py'}


def files_in(folder):
    return {path.name for path in (REPO / folder).iterdir() if path.is_file()}


def test_tools_holds_the_user_commands_and_studies_the_studies():
    assert files_in('tools') == USER_COMMANDS
    assert STUDIES <= files_in('studies')
    assert not (REPO / 'hint_plugin' / 'precision_study.py').exists()


def path_edits(source, filename='<source>'):
    """Line numbers where ``source`` changes ``sys.path`` (a call of one of its methods, an assignment to it) or
    calls ``site.addsitedir``."""
    lines = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value if node.func.attr != 'addsitedir' else node.func
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        if target is not None and ast.unparse(target) in ('sys.path', 'site.addsitedir'):
            lines.append(node.lineno)
    return sorted(lines)


def test_nothing_edits_sys_path():
    # the check finds each kind of edit
    assert path_edits('import sys\nsys.path.insert(0, "x")\nsys.path += ["y"]\nsys.path = []\n') == [2, 3, 4]
    assert path_edits('import site\nsite.addsitedir("x")\n') == [2]
    assert path_edits('import sys\nprint(sys.path[0])\n') == []
    offences = [f'{path.relative_to(REPO)}:{line}' for folder in ('tools', 'studies', 'hint_plugin')
                for path in sorted((REPO / folder).rglob('*.py')) for line in path_edits(path.read_text(), str(path))]
    assert offences == []


def console_scripts():
    with open(REPO / 'pyproject.toml', 'rb') as file:
        return tomllib.load(file)['project']['scripts']


def test_console_scripts_resolve_to_the_mains_the_tools_scripts_run():
    scripts = console_scripts()
    assert {'hint-train', 'hint-test', 'hint-infer'} <= set(scripts)
    wrapped = {}  # 'module:function' -> the tools/ script that imports and runs it
    for path in (REPO / 'tools').glob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('hint_plugin.cli.'):
                wrapped.update({f'{node.module}:{alias.name}': path.name for alias in node.names})
    for name, target in scripts.items():
        module, function = target.split(':')
        assert callable(getattr(importlib.import_module(module), function)), name
        assert target in wrapped, f'{name} ({target}) has no script in tools/'
