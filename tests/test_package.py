"""The package is a library: no command-line parsing or printing in it, and ``import hint_plugin`` registers and
changes nothing else in BasicSR (the training fixes apply only when asked).

The import check runs in a fresh interpreter: it imports BasicSR, records every attribute of every ``basicsr``
module and every class those modules define, imports the plugin, and lists what is no longer the same object.
"""
import ast
import json
import subprocess
import sys

from conftest import REPO

SNAPSHOT = r'''
import importlib, inspect, json, sys
import torchvision.transforms.functional
try:
    import torchvision.transforms.functional_tensor
except ImportError:  # what BasicSR 1.4.2 imports, gone in torchvision >= 0.17 (the plugin's one alias)
    sys.modules['torchvision.transforms.functional_tensor'] = torchvision.transforms.functional
for name in ('basicsr', 'basicsr.train', 'basicsr.test', 'basicsr.utils.dist_util', 'basicsr.utils.options',
             'basicsr.utils.file_client', 'basicsr.data.data_sampler', 'basicsr.data', 'basicsr.models'):
    importlib.import_module(name)

def snapshot():
    objects = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == 'basicsr' or module_name.startswith('basicsr.')):
            continue
        for attribute, value in list(vars(module).items()):
            objects[f'{module_name}.{attribute}'] = id(value)
            if inspect.isclass(value) and value.__module__.startswith('basicsr'):
                for member, member_value in list(vars(value).items()):
                    objects[f'{module_name}.{attribute}.{member}'] = id(member_value)
    return objects

before = snapshot()
import hint_plugin
after_import = snapshot()
from hint_plugin import compat
compat.apply_training_fixes()
after_fixes = snapshot()

def changed(old, new):
    return sorted(key for key in old if key in new and old[key] != new[key])

print(json.dumps({'import': changed(before, after_import), 'fixes': changed(after_import, after_fixes),
                  'checked': len(before)}))
'''


def run_snapshot():
    result = subprocess.run([sys.executable, '-c', SNAPSHOT], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_leaves_basicsr_untouched_and_the_training_fixes_apply_only_when_called():
    changes = run_snapshot()
    assert changes['checked'] > 1000  # the snapshot saw BasicSR's modules and classes
    assert changes['import'] == []
    # the fixes the plugin's train/test entry points apply: the objects the import above left alone
    assert {'basicsr.utils.dist_util.init_dist', 'basicsr.utils.options.init_dist', 'basicsr.train.load_resume_state',
            'basicsr.train.EnlargedSampler', 'basicsr.train.create_train_val_dataloader',
            'basicsr.utils.file_client.LmdbBackend.__init__',
            'basicsr.utils.options.ordered_yaml'} <= set(changes['fixes'])


def package_offences(package):
    """``(file, line, what)`` for every ``argparse`` import and every ``print(...)`` call under ``package``."""
    offences = []
    for path in sorted(package.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or '']
            else:
                names = []
            if any(name.split('.')[0] == 'argparse' for name in names):
                offences.append((path.relative_to(package.parent).as_posix(), node.lineno, 'argparse'))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'print':
                offences.append((path.relative_to(package.parent).as_posix(), node.lineno, 'print'))
    return offences


def test_only_the_command_lines_parse_arguments_and_print(tmp_path):
    offences = package_offences(REPO / 'hint_plugin')
    assert [offence for offence in offences if not offence[0].startswith('hint_plugin/cli/')] == []
    # the check finds both kinds where they are (hint_plugin/cli parses and prints)
    assert {what for _, _, what in offences} == {'argparse', 'print'}
