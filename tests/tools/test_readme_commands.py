"""The README's commands stay valid: their tools, option files and make targets exist, and every flag they pass
is one the tool's own ``--help`` lists (the commands themselves run in the demo and the end-to-end tests)."""
import json
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

# Runs each script given as ``__main__`` with ``--help``, one after the other in this one process (one start-up
# of torch and BasicSR instead of one per script), as ``python <script> --help`` would: argv, the script's folder
# first on sys.path. Prints {script: [exit status, stdout, error]} as JSON on its last line. That each tool also
# starts in a fresh process is checked by the tests that run it (train/test: tests/models, tests/tools;
# create_lmdb: tests/data/test_create_lmdb.py; inference: tests/test_inference.py).
HELP_PROBE = r"""
import contextlib, io, json, os, runpy, sys, traceback
results = {}
for script in sys.argv[1:]:
    out, error, status = io.StringIO(), '', 0
    sys.argv = [script, '--help']
    sys.path.insert(0, os.path.dirname(script))
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name='__main__')
    except SystemExit as exit:
        status = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
        error = '' if isinstance(exit.code, (int, type(None))) else str(exit.code)
    except BaseException:
        status, error = 1, traceback.format_exc()
    finally:
        sys.path.remove(os.path.dirname(script))
    results[script] = [status, out.getvalue(), error]
print(json.dumps(results))
"""


@pytest.fixture(scope='module')
def help_texts():
    """``{script: (exit status, --help output, error)}`` of every script the README passes flags to."""
    result = subprocess.run([sys.executable, '-c', HELP_PROBE, *(str(REPO / script) for script in FLAGGED_SCRIPTS)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    texts = json.loads(result.stdout.splitlines()[-1])
    return {script: tuple(texts[str(REPO / script)]) for script in FLAGGED_SCRIPTS}


@pytest.mark.parametrize('script', FLAGGED_SCRIPTS)
def test_every_flag_in_the_readme_is_one_the_tool_accepts(script, help_texts):
    status, stdout, error = help_texts[script]
    assert status == 0, error[-2000:]
    accepted = set(re.findall(r'(?<![\w-])(--?[A-Za-z][\w-]*)', stdout))
    used = {word for words in TOOL_COMMANDS if words[1] == script for word in words[2:] if word.startswith('-')}
    assert used <= accepted, f'{script} --help does not list {sorted(used - accepted)}'
