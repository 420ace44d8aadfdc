"""The README's commands stay valid: their tools, option files and make targets exist, and every flag they pass
is one the tool's own ``--help`` lists (the commands themselves run in the demo and the end-to-end tests)."""
import contextlib
import io
import os
import re
import runpy
import shlex
import sys
import traceback

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
TOOL_COMMANDS = [words for words in COMMANDS if words[0] == 'python' and words[1].startswith(('tools/', 'studies/'))]


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
            if word.startswith(('tools/', 'studies/', 'options/')):
                assert (REPO / word).is_file(), f'README names {word}, which does not exist'


FLAGGED_SCRIPTS = sorted({words[1] for words in TOOL_COMMANDS if len(words) > 2})


def help_text(script):
    """``(exit status, stdout, error)`` of ``python <script> --help``, the script run as ``__main__`` in this process
    as that command would run it: its argv, its folder first on sys.path. That each tool also starts in a fresh
    process is checked by the tests that run it (train/test: tests/models, tests/tools; create_lmdb:
    tests/data/test_create_lmdb.py; inference: tests/test_inference.py)."""
    path = str(REPO / script)
    out, error, status = io.StringIO(), '', 0
    saved_argv = sys.argv
    sys.argv = [path, '--help']
    sys.path.insert(0, os.path.dirname(path))
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name='__main__')
    except SystemExit as exit_info:
        status = 0 if exit_info.code is None else exit_info.code if isinstance(exit_info.code, int) else 1
        error = '' if isinstance(exit_info.code, (int, type(None))) else str(exit_info.code)
    except Exception:  # the traceback the command would print, for the test to report
        status, error = 1, traceback.format_exc()
    finally:
        sys.argv = saved_argv
        sys.path.remove(os.path.dirname(path))
    return status, out.getvalue(), error


@pytest.fixture(scope='module')
def help_texts():
    """``{script: (exit status, --help output, error)}`` of every script the README passes flags to."""
    return {script: help_text(script) for script in FLAGGED_SCRIPTS}


@pytest.mark.parametrize('script', FLAGGED_SCRIPTS)
def test_every_flag_in_the_readme_is_one_the_tool_accepts(script, help_texts):
    status, stdout, error = help_texts[script]
    assert status == 0, error[-2000:]
    accepted = set(re.findall(r'(?<![\w-])(--?[A-Za-z][\w-]*)', stdout))
    used = {word for words in TOOL_COMMANDS if words[1] == script for word in words[2:] if word.startswith('-')}
    assert used <= accepted, f'{script} --help does not list {sorted(used - accepted)}'
