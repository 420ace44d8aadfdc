"""The README's commands stay valid: their tools, option files and make targets exist, and every flag they pass
is one the tool's own ``--help`` lists (the commands themselves run in the demo and the end-to-end tests)."""
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

README = (REPO / 'README.md').read_text()


def readme_commands():
    """Each command of the README's ``bash`` blocks, continuation lines joined and comments dropped."""
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', README, flags=re.S):
        for command in block.replace('\\\n', ' ').splitlines():
            words = shlex.split(command, comments=True)
            if words:
                commands.append(words)
    return commands


COMMANDS = readme_commands()
TOOL_COMMANDS = [words for words in COMMANDS if words[0] == 'python' and words[1].startswith('tools/')]


def test_the_readme_has_the_commands_a_newcomer_needs():
    scripts = {words[1] for words in TOOL_COMMANDS}
    assert ['make', 'demo'] in COMMANDS and ['make', 'test'] in COMMANDS
    assert {'tools/train.py', 'tools/test.py', 'tools/inference.py', 'tools/create_lmdb.py'} <= scripts


def test_make_targets_scripts_and_option_files_exist():
    makefile = (REPO / 'Makefile').read_text()
    for words in COMMANDS:
        if words[0] == 'make':
            assert re.search(rf'^{words[1]}:', makefile, flags=re.M), f'Makefile has no target {words[1]!r}'
        for word in words:
            if word.startswith(('tools/', 'options/')):
                assert (REPO / word).is_file(), f'README names {word}, which does not exist'


@pytest.mark.parametrize('script', sorted({words[1] for words in TOOL_COMMANDS if len(words) > 2}))
def test_every_flag_in_the_readme_is_one_the_tool_accepts(script):
    result = subprocess.run([sys.executable, str(REPO / script), '--help'], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    accepted = set(re.findall(r'(?<![\w-])(--?[A-Za-z][\w-]*)', result.stdout))
    used = {word for words in TOOL_COMMANDS if words[1] == script for word in words[2:] if word.startswith('-')}
    assert used <= accepted, f'{script} --help does not list {sorted(used - accepted)}'
