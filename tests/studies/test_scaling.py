"""studies/scaling.py: inference cost against image size, this tree against a reference, in alternating rounds."""
import importlib.util
import json

import pytest

from tests.helpers import REFERENCE_STAND_IN, REPO

TINY = 'network_g: {type: HINT, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}\n'


def scaling_tool():
    """studies/scaling.py as a module (the studies are not a package)."""
    module_spec = importlib.util.spec_from_file_location('_scaling_tool', REPO / 'studies' / 'scaling.py')
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_rounds_alternate_and_the_line_gives_memory_per_megapixel():
    tool = scaling_tool()
    assert tool.round_orders(['a', 'b', 'c'], 3) == [['a', 'b', 'c'], ['c', 'b', 'a'], ['a', 'b', 'c']]
    assert tool.fit_line([(1, 3.0), (2, 5.0), (3, 7.0)]) == pytest.approx((1.0, 2.0))
    results = [{'name': 'x', 'megapixels': mp, 'peak_rss_gb': 1 + 2 * mp, 'size': 0} for mp in (0.25, 1.0)]
    assert tool.predicted_peak_gb(results, 'x', 4.0) == pytest.approx(9.0)
    assert tool.predicted_peak_gb(results[:1], 'x', 4.0) is None  # one size: no line
    (line, ) = tool.memory_lines(results, ['x'], memory_gib=10 / 1.073741824)
    assert '2.00 GB per megapixel above 1.00 GB' in line and 'whole within' in line and '4.50 MP' in line


def test_a_reference_whose_line_exceeds_the_budget_is_not_run_and_the_table_says_so(monkeypatch):
    tool = scaling_tool()
    calls = []

    def fake_measure(spec):
        calls.append((spec['size'][0], spec.get('code')))
        mp = spec['size'][0] ** 2 / 1e6
        return {'median_s': mp, 'peak_rss_gb': 1 + (40 if spec.get('code') else 1) * mp}

    monkeypatch.setattr(tool, 'measure', fake_measure)
    args = tool.argparse.Namespace(sizes=[500, 1000, 1500], precisions=['fp32'], rounds=1, warmup=0, repeat=1,
                                   memory_gib=24.0, opt=None, variant=None, device='cpu', no_channels_last=False,
                                   compile=False, threads=None)
    results = tool.run(args, reference='their/HINT_arch.py')
    # at 1500 px the reference's line (1 + 40 GB/MP) predicts 91 GB: not run; this tree still is
    assert calls == [(500, None), (500, 'reference'), (1000, None), (1000, 'reference'), (1500, None)]
    text = tool.table(results, ['this fp32', 'reference fp32'])
    assert 'not run: its line predicts 91.0 GB > 24.0 GiB' in text.splitlines()[-1]


@pytest.mark.slow  # two measuring processes (the memory line from several sizes: the tests above)
def test_scaling_measures_this_tree_and_the_reference_and_plots(tmp_path, capsys):
    reference = tmp_path / 'HINT_arch.py'
    reference.write_text(REFERENCE_STAND_IN)
    config = tmp_path / 'net.yml'
    config.write_text(TINY)
    out_json, plot = tmp_path / 'scaling.json', tmp_path / 'scaling.png'
    status = scaling_tool().main(['--sizes', '16', '--precisions', 'fp32', '--reference', str(reference),
                                  '--rounds', '1', '--warmup', '0', '--threads', '1', '--opt', str(config),
                                  '--json', str(out_json), '--plot', str(plot)])
    assert status == 0
    records = json.loads(out_json.read_text())
    assert [(r['size'], r['name']) for r in records] == [(16, 'this fp32'), (16, 'reference fp32')]
    assert all(r['network_file'] == str(reference) for r in records if r['name'] == 'reference fp32')
    out = capsys.readouterr().out
    (row, ) = [line for line in out.splitlines() if line.startswith('| 16x16')]
    assert row.count('x |') == 2  # this tree / reference: time and memory
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_the_gpu_script_passes_only_flags_the_study_takes():
    import shlex

    script = (REPO / 'studies' / 'gpu_scaling.sh').read_text().replace('\\\n', ' ')
    commands = [line.split('|')[0] for line in script.splitlines() if 'studies/scaling.py' in line
                and not line.lstrip().startswith('#')]
    assert len(commands) == 2
    parser = scaling_tool().build_parser()
    for command in commands:
        words = shlex.split(command.replace('"$REFERENCE"', 'ref').replace('"$OUT', '"out'))
        args = parser.parse_args(words[words.index('studies/scaling.py') + 1:])
        assert args.device == 'cuda' and args.sizes == [512, 1024, 2048]
