"""tools/benchmark.py on a tiny network: both modes, a table and JSON with the measured fields, another revision."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_benchmark_cli_measures_train_and_infer(tmp_path):
    config = tmp_path / 'net.yml'
    config.write_text('network_g: {type: HINT, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}\n')
    out_json = tmp_path / 'bench.json'
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--opt', str(config), '--train-size', '24', '32',
         '--infer-size', '40', '40', '--batch', '2', '--repeat', '2', '--threads', '1', '--variant', 'refined',
         '--use-checkpoint', '--profile', '3', '--json', str(out_json)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| train | 24x32 | 2 | cpu | fp32 | refined | True |' in result.stdout
    assert '| infer | 40x40 | 2 | cpu | fp32 | refined |' in result.stdout
    records = json.loads(out_json.read_text())
    assert [r['mode'] for r in records] == ['train', 'infer']
    for record in records:
        assert len(record['times_s']) == 2 and 0 < record['min_s'] <= record['median_s']
        assert 0.1 < record['peak_rss_gb'] < 20 and record['threads'] == 1
        assert record['retain_freed_memory'] is sys.platform.startswith('linux')
        names = [name for name, _ in record['top_ops']]
        assert len(names) == 3 and all(name.startswith('aten::') for name in names)
        assert 0 < record['convolution_share'] < 1 and record['profiled_s'] > 0
    assert 'in convolutions (forward and backward)' in result.stdout


def test_benchmark_measures_another_revision_with_the_same_code(tmp_path):
    config = tmp_path / 'net.yml'
    config.write_text('network_g: {type: HINT, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}\n')
    out_json = tmp_path / 'bench.json'
    head = subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--revision', 'HEAD', '--opt', str(config), '--mode',
         'infer', '--infer-size', '16', '24', '--repeat', '1', '--threads', '1', '--json', str(out_json)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[2].endswith(f'| {head} |')
    record, = json.loads(out_json.read_text())
    assert record['revision'] == head and record['size'] == [16, 24] and record['threads'] == 1
    # the network came from the exported copy, not from this checkout, and the copy is gone afterwards
    network_file = record['network_file']
    assert 'hint-revision-' in network_file and not network_file.startswith(str(REPO))
    assert network_file.endswith('hint_plugin/archs/hint_arch.py')
    assert not Path(network_file).exists()


def test_benchmark_names_an_unknown_revision():
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--revision', 'no-such-commit'],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert "'no-such-commit' is not a commit of the repository" in result.stderr
