"""Option files that would run code or lose a value, experiment names that leave their folder, a second training of
a running experiment, CUDA options without CUDA, a save that fails, Ctrl-C: each fed to the entry points in-process
(``main`` with its arguments), asserting the exit status, the words of the message, and that nothing ran or moved.
"""
import errno
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from basicsr.utils.options import ordered_yaml

from conftest import REPO
from hint_plugin.utils.experiment_lock import experiment_lock, lock_path
from hint_plugin.utils.option_schema import check_options
from hint_plugin.utils.options import OptionsError, read_options
from hint_plugin.cli import complexity, convert_weights, create_lmdb, export_onnx, inference
from hint_plugin.cli import pipeline as entry
from studies import benchmark, cache_study, precision_table
from tests.helpers import fresh_basicsr_logger, train_options, write_yaml

TAG = '!!python/object/apply:os.system'


def code_running_file(path, marker, where):
    """An option file whose value at ``where`` (``manual_seed``, ``unknown``, ``nested``, ``key``) would create
    ``marker`` if read by PyYAML's full loader (BasicSR's); the tag sits on line 3."""
    call = f'{TAG} ["touch {marker}"]'
    body = {'manual_seed': f'manual_seed: {call}\n', 'unknown': f'not_an_option: {call}\n',
            'nested': f'datasets:\n  train: [1, {call}]\n', 'key': f'? {call}\n: 1\n'}[where]
    path.write_text(f'name: tagged\nmodel_type: HINTModel\n{body}network_g: {{type: HINT}}\n')
    return str(path)


def run_entry(main, argv, monkeypatch=None, program='tools/train.py'):
    """``main(argv)``, or ``main()`` with ``sys.argv`` set when ``monkeypatch`` is given (BasicSR's pipelines read
    ``sys.argv``); the exit status (0 when it returned normally, its return value when an int)."""
    if monkeypatch is not None:
        monkeypatch.setattr(sys, 'argv', [program, *argv])
        argv = None
    with fresh_basicsr_logger():  # its handlers write to this test's captured stderr, and go with it
        try:
            result = main() if argv is None else main(argv)
        except SystemExit as exit_info:
            return exit_info.code
    return result if isinstance(result, int) else 0


ENTRY_POINTS = {  # name: (main, argv for an option file FILE, whether it reads sys.argv)
    'train': (entry.train_main, ['-opt', 'FILE'], True),
    'test': (entry.test_main, ['-opt', 'FILE'], True),
    'inference-opt': (inference.main, ['--opt', 'FILE', '-i', 'in.png', '-o', 'out'], False),
    'inference-config': (inference.main, ['--config', 'FILE', '--weights', 'w.pth', '-i', 'in.png', '-o', 'out'],
                         False),
    'export_onnx-config': (export_onnx.main, ['--config', 'FILE', '--weights', 'w.pth', '-o', 'x.onnx'], False),
    'convert_weights-config': (convert_weights.main, ['w.pth', 'w.safetensors', '--config', 'FILE'], False),
    'complexity': (complexity.main, ['--opt', 'FILE'], False),
    'cache_study': (cache_study.main, ['--opt', 'FILE', '--weights', 'w.pth'], False),
    'precision_table': (precision_table.main, ['--config', 'FILE'], False),
    'benchmark': (benchmark.main, ['--opt', 'FILE'], False),
}


def feed(entry_point, path, tmp_path, monkeypatch):
    main, argv, reads_sys_argv = ENTRY_POINTS[entry_point]
    monkeypatch.chdir(tmp_path)
    torch.save({'params': {}}, tmp_path / 'w.pth')  # a weights file where one is required before the options
    argv = [path if arg == 'FILE' else arg for arg in argv]
    return run_entry(main, argv, monkeypatch if reads_sys_argv else None)


# ---------------------------------------------------------------------------------- code in an option file
@pytest.mark.parametrize('entry_point', ENTRY_POINTS)
def test_python_tag_runs_nothing_and_exits_2_at_every_entry_point(tmp_path, monkeypatch, capsys, entry_point):
    marker = tmp_path / 'MARKER'
    path = code_running_file(tmp_path / 'tagged.yml', marker, 'manual_seed')
    status = feed(entry_point, path, tmp_path, monkeypatch)
    message = capsys.readouterr().err
    assert status == 2, message
    assert f'{path}, line 3 (key manual_seed): the tag {TAG} would run Python code' in message, message
    assert not marker.exists()


@pytest.mark.parametrize('where, place', [('unknown', 'line 3 (key not_an_option)'),
                                          ('nested', 'line 4 (key datasets.train[1])'),
                                          ('key', 'line 3 (the top level)')])
def test_python_tag_under_an_unknown_key_a_list_or_as_a_key_runs_nothing(tmp_path, monkeypatch, capsys, where,
                                                                        place):
    marker = tmp_path / 'MARKER'
    path = code_running_file(tmp_path / 'tagged.yml', marker, where)
    assert feed('train', path, tmp_path, monkeypatch) == 2
    message = capsys.readouterr().err
    assert f'train: error: {path}, {place}: the tag {TAG} would run Python code' in message, message
    assert not marker.exists()


def test_python_name_tag_and_a_local_tag_are_refused(tmp_path):
    path = tmp_path / 'tags.yml'
    path.write_text('name: x\nloss: !!python/name:os.system\n')
    with pytest.raises(OptionsError, match=r'line 2 \(key loss\): the tag !!python/name:os.system would run'):
        read_options(path)
    path.write_text('name: x\nlr: !custom 3\n')
    with pytest.raises(OptionsError, match=r'line 2 \(key lr\): the tag !custom is not a plain YAML type'):
        read_options(path)


def test_basicsr_parse_options_uses_the_safe_loader_once_the_entry_points_fixes_apply(tmp_path, monkeypatch):
    """The entry point reads the file first; should BasicSR's own parser read it anyway, it refuses the tag too."""
    from basicsr.utils.options import parse_options

    from hint_plugin import compat
    compat.apply_training_fixes()
    marker = tmp_path / 'MARKER'
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', code_running_file(tmp_path / 't.yml', marker, 'unknown')])
    with pytest.raises(OptionsError, match=f'line 3 .key not_an_option.: the tag {TAG}'):
        parse_options(str(tmp_path), is_train=True)
    assert not marker.exists()


@pytest.mark.slow
def test_train_command_with_a_python_tag_runs_nothing(tmp_path):
    """The whole command in a fresh interpreter: BasicSR imported as a user's ``python tools/train.py`` does."""
    marker = tmp_path / 'MARKER'
    path = code_running_file(tmp_path / 'tagged.yml', marker, 'unknown')
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'), '-opt', path], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(REPO)})
    assert result.returncode == 2, result.stderr[-3000:]
    assert f'line 3 (key not_an_option): the tag {TAG}' in result.stderr and 'Traceback' not in result.stderr
    assert not marker.exists() and not (tmp_path / 'experiments').exists()


# ------------------------------------------------------------------------------------------- duplicate keys
@pytest.mark.parametrize('entry_point', ['train', 'test', 'inference-config', 'convert_weights-config'])
def test_total_iter_given_twice_exits_2_naming_both_lines(tmp_path, monkeypatch, capsys, entry_point):
    path = tmp_path / 'twice.yml'
    path.write_text('name: x\nnetwork_g: {type: HINT}\ntrain:\n  total_iter: 4\n  total_iter: 2\n')
    assert feed(entry_point, str(path), tmp_path, monkeypatch) == 2
    message = capsys.readouterr().err
    assert f'{path}, line 5: key train.total_iter is given twice (first on line 4)' in message, message


def test_learning_rate_given_twice_in_a_flow_mapping_is_refused(tmp_path):
    path = tmp_path / 'twice.yml'
    path.write_text('train:\n  optim_g: {type: AdamW, lr: 0.001, lr: 50}\n')
    with pytest.raises(OptionsError, match='line 2: key train.optim_g.lr is given twice'):
        read_options(path)


def test_repository_option_files_read_as_basicsr_reads_them():
    """Safe loading changes no value of a valid file (``!!float``, bare ``1e-4`` strings, order, nesting)."""
    files = sorted((REPO / 'options').glob('*/*.yml'))
    assert len(files) > 10
    for path in files:
        with open(path, encoding='utf-8') as file:
            basicsr_reading = yaml.load(file, Loader=ordered_yaml()[0])  # noqa: S506  (the repository's own files)
        assert json.dumps(read_options(path)) == json.dumps(basicsr_reading), path


def test_merge_keys_and_float_tags_keep_their_yaml_meaning(tmp_path):
    path = tmp_path / 'dialect.yml'
    path.write_text('base: &b {lr: !!float 1e-4, steps: 3}\ntrain:\n  <<: *b\n  steps: 5\nplain: 1e-4\n')
    options = read_options(path)
    assert options['train'] == {'lr': 1e-4, 'steps': 5} and options['plain'] == '1e-4'


# ------------------------------------------------------------------------------------------ experiment names
def checked_without_data(monkeypatch):
    """The option check, without requiring the data folders of these tests on disk."""
    monkeypatch.setattr('hint_plugin.utils.startup_checks.check_options',
                        lambda options, is_train, source: check_options(options, is_train, source=source,
                                                                        check_paths=False))


@pytest.mark.parametrize('name', ['../../victim_dir', 'a/b', 'a\\b', '', '.', '..'],
                         ids=['parent-escape', 'slash', 'backslash', 'empty', 'dot', 'dot-dot'])
def test_experiment_name_that_is_not_one_folder_name_exits_2(tmp_path, monkeypatch, capsys, tiny_data, name):
    work = tmp_path / 'a' / 'b'
    work.mkdir(parents=True)
    victim = tmp_path / 'victim_dir'
    victim.mkdir()
    (victim / 'keep.txt').write_text('mine')
    path = write_yaml(tmp_path / 'train.yml', train_options(name, tiny_data, total_iter=2, save_every=2))
    checked_without_data(monkeypatch)
    monkeypatch.chdir(work)
    assert run_entry(entry.train_main, ['-opt', path], monkeypatch) == 2
    message = capsys.readouterr().err
    assert f'train: error: {path}: name = {name!r}: expected a plain name' in message, message
    assert sorted(os.listdir(tmp_path)) == ['a', 'train.yml', 'victim_dir']
    assert os.listdir(victim) == ['keep.txt'] and os.listdir(work) == []


@pytest.mark.parametrize('name', ['../escaped', 'sub/gt', '..'])
def test_create_lmdb_name_outside_the_output_folder_exits_2(tmp_path, capsys, name):
    (tmp_path / 'images').mkdir()
    argv = ['--layout', 'single', '--input', str(tmp_path / 'images'), '--output', str(tmp_path / 'out'),
            '--name', name]
    assert run_entry(create_lmdb.main, argv) == 2
    assert f'--name = {name!r}: expected a plain name' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['images']


# ----------------------------------------------------------------------------------------- experiment lock
def a_finished_process_id():
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def test_second_training_of_a_running_experiment_exits_2_naming_the_holder(tmp_path, monkeypatch, capsys,
                                                                            tiny_data):
    lock = tmp_path / 'experiments' / 'busy.lock'
    lock.parent.mkdir()
    lock.write_text(f'{os.getppid()} {socket.gethostname()}\n')  # a live process: the first training
    path = write_yaml(tmp_path / 'train.yml', train_options('busy', tiny_data, total_iter=2, save_every=2))
    monkeypatch.chdir(tmp_path)
    assert run_entry(entry.train_main, ['-opt', path], monkeypatch) == 2
    message = capsys.readouterr().err
    assert f'{lock}: process {os.getppid()} on {socket.gethostname()} is training into this experiment' in message
    assert sorted(os.listdir(tmp_path / 'experiments')) == ['busy.lock']  # nothing archived or created


def test_lock_of_a_killed_training_is_taken_over_and_released_at_exit(tmp_path):
    path = lock_path(str(tmp_path), 'exp')
    with open(path, 'w') as file:
        file.write(f'{a_finished_process_id()} {socket.gethostname()}\n')
    with experiment_lock(str(tmp_path), 'exp'):
        assert open(path).read().split()[0] == str(os.getpid())
        with pytest.raises(OptionsError, match='is training into this experiment folder'):
            with experiment_lock(str(tmp_path), 'exp'):
                pass  # pragma: no cover
    assert not os.path.exists(path)


def test_lock_is_held_while_the_pipeline_runs_and_released_after_an_error(tmp_path, monkeypatch, capsys, tiny_data):
    path = write_yaml(tmp_path / 'train.yml', train_options('held', tiny_data, total_iter=2, save_every=2))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', '-opt', path])
    seen = []

    def pipeline(root):
        seen.append(open(lock_path(os.path.join(root, 'experiments'), 'held')).read().split()[0])
        raise OSError(errno.ENOSPC, 'No space left on device')  # not a named error: its traceback stays

    with pytest.raises(OSError):
        entry.run_pipeline(pipeline, is_train=True)
    assert seen == [str(os.getpid())] and os.listdir(tmp_path / 'experiments') == []


# -------------------------------------------------------------------------------------------- CUDA options
@pytest.mark.parametrize('changes, words', [({'num_gpu': 1}, 'num_gpu = 1, but this machine has no CUDA GPU'),
                                            ({'prefetch_mode': 'cuda'},
                                             "datasets.train.prefetch_mode = 'cuda', but this machine has no CUDA")],
                         ids=['num_gpu-1', 'prefetch_mode-cuda'])
def test_cuda_options_without_cuda_exit_2(tmp_path, monkeypatch, capsys, tiny_data, changes, words):
    options = train_options('cuda', tiny_data, total_iter=2, save_every=2)
    options['num_gpu'] = changes.get('num_gpu', 0)
    if 'prefetch_mode' in changes:
        options['datasets']['train'].update(prefetch_mode='cuda', pin_memory=True)
    path = write_yaml(tmp_path / 'train.yml', options)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.chdir(tmp_path)
    assert run_entry(entry.train_main, ['-opt', path], monkeypatch) == 2
    message = capsys.readouterr().err
    assert f'train: error: {path}: {words}' in message, message
    assert not (tmp_path / 'experiments').exists()


# ------------------------------------------------------------------------------ failing saves and Ctrl-C
def test_disk_full_while_saving_exits_1_naming_the_file_and_the_state_kept(tmp_path, monkeypatch, capsys, tiny_data):
    path = write_yaml(tmp_path / 'train.yml', train_options('full', tiny_data, total_iter=4, save_every=2))
    real_save = torch.save

    def save(obj, file, *args, **kwargs):
        if str(getattr(file, 'name', file)).endswith('4.state.tmp'):
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, 'save', save)
    monkeypatch.chdir(tmp_path)
    assert run_entry(entry.train_main, ['-opt', path], monkeypatch) == 1
    message = capsys.readouterr().err
    states = tmp_path / 'experiments' / 'full' / 'training_states'
    assert f'train: error: cannot save {states / "4.state"}: No space left on device; nothing was written under ' \
           'that name, and so is every checkpoint and training state saved before it' in message, message
    assert 'Traceback' not in message
    assert sorted(os.listdir(states)) == ['2.state']
    assert not os.path.exists(lock_path(str(tmp_path / 'experiments'), 'full'))


def test_ctrl_c_during_training_exits_130_with_the_iteration_and_the_resume_command(tmp_path, monkeypatch, capsys,
                                                                                     tiny_data):
    from hint_plugin.models.hint_model import HINTModel
    path = write_yaml(tmp_path / 'train.yml', train_options('stopped', tiny_data, total_iter=8, save_every=2))
    optimize = HINTModel.optimize_parameters

    def interrupted_at_3(self, current_iter, *args, **kwargs):
        if current_iter == 3:
            raise KeyboardInterrupt
        return optimize(self, current_iter, *args, **kwargs)

    monkeypatch.setattr(HINTModel, 'optimize_parameters', interrupted_at_3)
    monkeypatch.chdir(tmp_path)
    assert run_entry(entry.train_main, ['-opt', path], monkeypatch) == 130
    message = capsys.readouterr().err
    assert (f'train: interrupted (Ctrl-C) during iteration 3; the last saved training state is iteration 2: '
            f'resume from it with: python tools/train.py -opt {path} --auto_resume') in message, message
    assert not os.path.exists(lock_path(str(tmp_path / 'experiments'), 'stopped'))


def test_ctrl_c_during_testing_exits_130_without_a_traceback(tmp_path, monkeypatch, capsys):
    def interrupted(root):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, 'argv', ['tools/test.py'])  # no -opt: BasicSR's own parser would say it is required
    with pytest.raises(SystemExit) as exit_info:
        entry.run_pipeline(interrupted, is_train=False)
    assert exit_info.value.code == 130 and capsys.readouterr().err == 'test: interrupted (Ctrl-C)\n'
