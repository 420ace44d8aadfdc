"""studies/variant_study.py: official vs refined with one recipe; the pieces, and the whole study in --quick mode."""
import argparse
import json
import math

import numpy as np
import pytest

from studies import variant_study
from studies.variant_study import Run, darken, format_summary, parse_arm, run_options, summarise
from tests.helpers import run_tool_in_process

demo = variant_study.demo  # tools/demo.py, which the study builds on


def test_darken_is_seeded_by_name_darker_and_eight_bit():
    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    dark = darken(image, 'astronaut_00')
    assert dark.dtype == np.uint8 and dark.shape == image.shape
    assert np.array_equal(dark, darken(image, 'astronaut_00'))
    assert not np.array_equal(dark, darken(image, 'astronaut_01'))
    assert dark.mean() < 0.5 * image.mean()  # gain <= 0.7 and gamma >= 2


@pytest.mark.parametrize('task', ['denoise', 'lowlight'])
def test_the_two_arms_differ_only_in_variant(task):
    base = demo.load_yaml(demo.TRAIN_OPTIONS)
    official, refined = (run_options(base, task, variant, 1, 300) for variant in ('official', 'refined'))
    assert official['network_g']['variant'] == 'official' and refined['network_g']['variant'] == 'refined'
    assert official['manual_seed'] == refined['manual_seed'] == 1
    assert official['name'] != refined['name']
    for options in (official, refined):
        del options['name']
        options['network_g'].pop('variant')
    assert official == refined
    train_set = official['datasets']['train']
    assert sum(train_set['iters']) == official['train']['total_iter'] == 300
    assert official['train']['scheduler']['periods'] == [300]
    assert official['val']['val_freq'] > 300  # only BasicSR's validation after the last iteration
    assert official['network_g']['dim'] == base['network_g']['dim']  # the demo's network
    if task == 'lowlight':
        assert train_set['type'] == official['datasets']['val']['type'] == 'CheckedPairedImageDataset'


def test_summary_gives_mean_and_sample_spread_per_task_and_variant():
    runs = [Run('denoise', 'official', seed, f'r{seed}', psnr=psnr, ssim=0.8, seconds=1.0)
            for seed, psnr in enumerate([30.0, 31.0, 32.0])] + [Run('denoise', 'refined', 0, 'x', 29.5, 0.7, 1.0)]
    summary = summarise(runs)
    assert summary['denoise']['official']['psnr'] == (31.0, 1.0)
    assert summary['denoise']['official']['n'] == 3
    assert summary['denoise']['refined']['psnr'] == (29.5, 0.0)
    table = format_summary(runs, summary)
    assert '| denoise | official | 3 | 31.00 ± 1.00 | 0.8000 ± 0.0000 |' in table
    assert '| r2 | 32.00 | 0.8000 | 1 |' in table


@pytest.mark.slow
def test_quick_study_trains_both_variants_on_both_tasks(tmp_path, monkeypatch):
    # variant_study.main in this process (its argument parsing included); the four trainings run in their own
    # processes as from the command line, two at a time; the two tools/create_lmdb.py runs that make the data run as
    # __main__ in this process (tests/helpers.tool_in_process: the demo's tests and tests/data start it afresh); an
    # error exits with its message
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, 'run_tool', run_tool_in_process(demo.DemoError))
    variant_study.main(['--quick', '--seeds', '3', '--jobs', '2', '--workdir', str(tmp_path)])
    data = json.loads((tmp_path / 'results' / 'variant_study' / 'summary.json').read_text())
    runs = {(run['task'], run['variant']): run for run in data['runs']}
    assert sorted(runs) == [(task, variant) for task in ('denoise', 'lowlight') for variant in ('official', 'refined')]
    for run in runs.values():
        assert run['seed'] == 3 and 5 < run['psnr'] < 60 and 0 < run['ssim'] <= 1 and math.isfinite(run['seconds'])
        log = (tmp_path / 'results' / 'variant_study' / 'logs' / f'{run["name"]}.log').read_text()
        assert f"variant: {run['variant']}" in log  # BasicSR logs the options it trained with
    summary = (tmp_path / 'results' / 'variant_study' / 'summary.md').read_text()
    assert '| lowlight | refined | 1 |' in summary and 'python studies/variant_study.py' in summary


def test_an_arm_may_name_the_cache_init():
    base = demo.load_yaml(demo.TRAIN_OPTIONS)
    plain, seeded = (run_options(base, 'denoise', arm, 0, 40) for arm in ('refined', 'refined+zeros'))
    assert 'cache_init' not in plain['network_g'] and seeded['network_g']['cache_init'] == 'zeros'
    assert seeded['network_g']['variant'] == 'refined' and plain['name'] != seeded['name']
    with pytest.raises(argparse.ArgumentTypeError, match='CACHE_INIT one of'):
        parse_arm('refined+ones')
