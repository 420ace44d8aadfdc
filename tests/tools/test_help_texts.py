"""Every installed command says what it does in ``--help``, in plain text (no Sphinx markup), and exits 0."""
import re
import sys
from importlib import import_module

import pytest

from tests.helpers import REPO


def console_scripts():
    """``{command: 'module:function'}`` from pyproject.toml's [project.scripts]."""
    text = (REPO / 'pyproject.toml').read_text()
    table = text.split('[project.scripts]', 1)[1].split('\n[', 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', table, flags=re.M))


SCRIPTS = console_scripts()


@pytest.mark.parametrize('command', sorted(SCRIPTS))
def test_help_describes_the_command_in_plain_text(command, capsys, monkeypatch):
    module, function = SCRIPTS[command].split(':')
    monkeypatch.setattr(sys, 'argv', [command, '--help'])
    with pytest.raises(SystemExit) as exit:
        entry = getattr(import_module(module), function)
        entry(['--help']) if function == 'main' else entry()
    assert exit.value.code in (0, None)
    text = capsys.readouterr().out
    usage, _, rest = text.partition('\n\n')
    assert usage.startswith('usage:')
    description = rest.split('\noptions:', 1)[0].split('\npositional arguments:', 1)[0].strip()
    assert len(description.split()) >= 8, f'{command} --help has no description:\n{text}'
    assert '``' not in text and not re.search(r':[a-z]+:`', text), f'{command} --help shows Sphinx markup:\n{text}'
