"""studies/benchmark.py on a tiny network: both modes, a table and JSON with the measured fields, another revision,
the authors' code from a path (a stand-in file here: theirs has no licence and cannot ship).

The first test runs the script as ``python studies/benchmark.py``; the others call its ``main`` in this process
(the parent only parses, spawns and prints), and each measurement still runs in its own fresh process."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO
from studies import benchmark  # by its package name: the spawned measuring processes unpickle its _measure
from tests.helpers import REFERENCE_STAND_IN

TINY = 'network_g: {type: HINT, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}\n'


def run_benchmark(capsys, *args):
    """``benchmark.main(args)`` in this process: its exit status (0 when it returns), stdout and stderr."""
    try:
        benchmark.main([str(arg) for arg in args])
        returncode = 0
    except SystemExit as exit_info:
        returncode = exit_info.code
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=returncode, stdout=out, stderr=err)


def test_benchmark_cli_measures_train_and_infer(tmp_path):
    # the command line in a fresh interpreter: the script as __main__ and its spawned measuring processes
    config = tmp_path / 'net.yml'
    config.write_text('network_g: {type: HINT, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}\n')
    out_json = tmp_path / 'bench.json'
    result = subprocess.run(
        [sys.executable, str(REPO / 'studies' / 'benchmark.py'), '--opt', str(config), '--train-size', '24', '32',
         '--infer-size', '40', '40', '--batch', '2', '--repeat', '2', '--threads', '1', '--variant', 'refined',
         '--use-checkpoint', '--profile', '3', '--json', str(out_json)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| 1 | this tree | train | 24x32 | 2 | cpu | fp32 | refined | True |' in result.stdout
    assert '| 1 | this tree | infer | 40x40 | 2 | cpu | fp32 | refined |' in result.stdout
    records = json.loads(out_json.read_text())
    assert [r['mode'] for r in records] == ['train', 'infer']
    for record in records:
        assert len(record['times_s']) == 2 and 0 < record['min_s'] <= record['median_s']
        assert 0.1 < record['peak_rss_gb'] < 20 and record['threads'] == 1
        assert record['retain_freed_memory'] is sys.platform.startswith('linux')
        names = [name for name, _ in record['top_ops']]
        assert len(names) == 3 and all(name.startswith('aten::') for name in names)
        assert 0 < record['convolution_share'] < 1 and record['profiled_s'] > 0
        # the FLOP count, the achieved rate and the machine's matmul peak measured in the same process
        assert record['gflop_per_step'] > 0 and record['matmul_peak_gflops'] > 0
        assert record['gflops'] == pytest.approx(record['gflop_per_step'] / record['median_s'])
        assert record['peak_fraction'] == pytest.approx(record['gflops'] / record['matmul_peak_gflops'])
    train, infer = records
    # a training step counts three forward passes, and the training images are 24x32 against 40x40
    assert train['gflop_per_step'] / infer['gflop_per_step'] == pytest.approx(3 * 24 * 32 / (40 * 40), rel=0.05)
    assert 'in convolutions (forward and backward)' in result.stdout


@pytest.mark.slow  # two measuring processes and a git export
def test_benchmark_measures_another_revision_with_the_same_code(tmp_path, capsys):
    config = tmp_path / 'net.yml'
    config.write_text(TINY)
    out_json = tmp_path / 'bench.json'
    head = subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    result = run_benchmark(capsys, '--revision', 'HEAD', '--opt', config, '--mode', 'infer', '--infer-size', 16,
                           24, '--repeat', 1, '--threads', 1, '--no-matmul-peak', '--json', out_json)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[2].startswith('| 1 | this tree | infer | 16x24 |')
    assert result.stdout.splitlines()[3].startswith(f'| 1 | {head} | infer | 16x24 |')
    assert f'infer 16x24: this tree / {head}: time ' in result.stdout
    ours, record = json.loads(out_json.read_text())
    # --no-matmul-peak, in both measuring processes: the FLOPs and the rate, without the peak and the share of it
    for measured, row in zip((ours, record), result.stdout.splitlines()[2:4]):
        assert measured['gflop_per_step'] > 0 and measured['gflops'] > 0
        assert 'matmul_peak_gflops' not in measured and 'peak_fraction' not in measured
        assert row.endswith(f" | {measured['gflop_per_step']:.3g} | {measured['gflops']:.3g} | - |"), row
    assert 'revision' not in ours and record['revision'] == head
    assert record['size'] == [16, 24] and record['threads'] == 1
    # the network came from the exported copy, not from this checkout, and the copy is gone afterwards
    network_file = record['network_file']
    assert 'hint-revision-' in network_file and not network_file.startswith(str(REPO))
    assert network_file.endswith('hint_plugin/archs/hint_arch.py')
    assert not Path(network_file).exists()


@pytest.mark.slow  # four measuring processes
def test_benchmark_runs_the_reference_code_from_a_path_in_alternating_rounds(tmp_path, capsys):
    reference = tmp_path / 'their-checkout' / 'basicsr' / 'models' / 'archs' / 'HINT_arch.py'
    reference.parent.mkdir(parents=True)
    reference.write_text(REFERENCE_STAND_IN)
    config = tmp_path / 'net.yml'
    config.write_text(TINY.replace('}', ', variant: refined, cache_init: zeros}'))  # keys theirs does not take
    out_json = tmp_path / 'bench.json'
    result = run_benchmark(capsys, '--reference', tmp_path / 'their-checkout', '--rounds', 2, '--opt', config,
                           '--mode', 'train', '--train-size', 16, 16, '--repeat', 1, '--warmup', 0, '--threads', 1,
                           '--no-matmul-peak', '--json', out_json)
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(out_json.read_text())
    # ABBA: each round in the other order, each measurement in its own process
    assert [(r['round'], r.get('code')) for r in records] == [(1, None), (1, 'reference'), (2, 'reference'),
                                                               (2, None)]
    assert all(r['retain_freed_memory'] == records[0]['retain_freed_memory'] for r in records)  # one allocator
    assert all(r['network_file'] == str(reference) for r in records if r.get('code'))
    # the same network (the stand-in takes dim, num_blocks ... from the YAML): the same FLOP count
    assert len({round(r['gflop_per_step'], 6) for r in records}) == 1
    assert not any('matmul_peak_gflops' in r for r in records)  # --no-matmul-peak
    ours = sorted(r['median_s'] for r in records if not r.get('code'))
    theirs = sorted(r['median_s'] for r in records if r.get('code'))
    line, = [line for line in result.stdout.splitlines() if line.startswith('train 16x16: this tree / reference')]
    assert f'time {sum(ours) / sum(theirs):.2f}x' in line and 'medians of 2 and 2 rounds' in line
    assert 'peak memory' in line and 'AdamW fused against loop' in line
    # what the network was built with, read off it; the keys the reference does not take, named
    assert all(r['built_variant'] == 'refined' and r['built_channels_last'] for r in records if not r.get('code'))
    # (the stand-in is this package's HINT underneath, built NCHW and official: read off it too)
    assert all(r['built_variant'] == 'official' and not r['built_channels_last'] for r in records if r.get('code'))
    assert "the reference's HINT() does not take network_g's variant, cache_init: not applied to it" in result.stdout


def test_benchmark_names_a_missing_reference_and_its_missing_imports(tmp_path, capsys):
    config = tmp_path / 'net.yml'
    config.write_text(TINY)
    for name, text, message in [
            ('missing', None, 'missing does not exist: --reference takes the authors\' HINT_arch.py'),
            ('HINT_arch.py', 'from sklearn.no_such_module import KMeans\n',  # 'sklearn' itself where not installed
             "HINT_arch.py imports 'sklearn"),
            ('other_arch.py', 'import no_such_package_here\n',
             "imports 'no_such_package_here', which is not installed: is it the authors' HINT_arch.py?"),
            ('arch_util.py', 'import torch\n', 'defines no HINT class'),
            ('net.yml', TINY, 'is not a Python file')]:
        path = tmp_path / name
        if text is not None and name != 'net.yml':
            path.write_text(text)
        with pytest.raises(SystemExit) as exit_info:
            benchmark.main(['--reference', str(path), '--opt', str(config), '--mode', 'infer'])
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2, name
        assert message in stderr, (name, stderr[-500:])
        if name == 'HINT_arch.py':
            assert 'which is not installed: pip install -r' in stderr and 'requirements/reference.txt' in stderr


def test_benchmark_names_an_unknown_revision(capsys):
    result = run_benchmark(capsys, '--revision', 'no-such-commit')
    assert result.returncode == 2
    assert "'no-such-commit' is not a commit of the repository" in result.stderr
