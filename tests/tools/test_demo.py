"""`make demo` (tools/demo.py): the whole pipeline in its --quick mode, and the figure and table code alone."""
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from tests.helpers import run_tool_in_process
from tools import demo

HELDOUT = sorted(demo.HELDOUT_PHOTOS)
TABLE_HEADER = ['image', 'noisy PSNR', 'noisy SSIM', 'NLM PSNR', 'NLM SSIM', 'HINT PSNR', 'HINT SSIM']


def table_rows(markdown):
    """The cells of every row of the first Markdown table in ``markdown`` (separator row left out)."""
    rows = [[cell.strip() for cell in line.strip().strip('|').split('|')]
            for line in markdown.splitlines() if line.startswith('|')]
    return [row for row in rows if not all(set(cell) <= set('-:') for cell in row)]


@pytest.fixture(scope='module')
def quick_demo(tmp_path_factory):
    """Run ``tools/demo.py --quick`` once in a fresh folder; returns (workdir, console output)."""
    workdir = tmp_path_factory.mktemp('demo')
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'demo.py'), '--quick', '--workdir', str(workdir)],
                            cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f'demo failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}'
    return workdir, result.stdout + result.stderr


@pytest.mark.slow
def test_quick_demo_writes_the_table(quick_demo):
    workdir, output = quick_demo
    report = (workdir / 'results' / 'demo' / 'metrics.md').read_text()
    rows = table_rows(report)
    assert rows[0] == TABLE_HEADER
    assert [row[0] for row in rows[1:]] == HELDOUT + ['**mean**']
    values = np.array([[float(cell) for cell in row[1:]] for row in rows[1:]])
    assert values.shape == (len(HELDOUT) + 1, 6)
    np.testing.assert_allclose(values[-1], values[:-1].mean(axis=0), atol=0.006)  # the mean of rounded cells
    psnr, ssim = values[:, 0::2], values[:, 1::2]
    assert np.all((psnr > 5) & (psnr < 60)) and np.all((ssim > 0) & (ssim <= 1))
    assert np.all((psnr[:, 0] > 19.5) & (psnr[:, 0] < 21.5))  # noisy at sigma 25: about 20.2 dB
    assert np.all(psnr[:, 1] > psnr[:, 0] + 4)  # non-local means denoises
    # the same table is printed, with the HINT mean that tools/test.py logged
    assert '\n'.join('| ' + ' | '.join(row) + ' |' for row in rows[1:]) in output
    logged = float(re.findall(r'# psnr: ([\d.]+)', output)[-1])
    assert abs(logged - values[-1, 4]) < 0.006


def printed_table(output):
    """The demo's table as it printed it (the lines of its last Markdown table)."""
    return [line for line in output.splitlines() if line.startswith('|')][-(len(HELDOUT) + 3):]


@pytest.mark.slow
def test_quick_demo_run_again_prints_the_same_table(quick_demo, monkeypatch, capsys):
    # the second run calls demo.main in this process, and its steps run tools/train.py and test.py as __main__ in
    # this process too, with the threads of a fresh interpreter (tests/helpers.tool_in_process); the first run
    # started the command line and each of its steps afresh
    workdir, output = quick_demo
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(demo, 'run_tool', run_tool_in_process(demo.DemoError))
    demo.main(['--quick', '--workdir', str(workdir)])  # exits with the error message on a DemoError
    again = capsys.readouterr().out
    assert 'already holds these training tiles: kept' in again
    assert printed_table(again) == printed_table(output)  # seeds, data order and noise are fixed


@pytest.mark.slow
def test_quick_demo_draws_four_labelled_panels_per_photo(quick_demo):
    workdir, _ = quick_demo
    figure = cv2.imread(str(workdir / 'results' / 'demo' / 'comparison.png'), cv2.IMREAD_COLOR)
    (height, width), corners = demo.figure_layout(len(HELDOUT))
    assert figure.shape == (height, width, 3)
    assert len(corners) == 4 * len(HELDOUT)
    visualization = next((workdir / 'results' / 'HINT_demo_denoise_quick' / 'visualization').iterdir())
    for row, name in enumerate(HELDOUT):
        clean = cv2.imread(str(workdir / demo.HELDOUT_DIR / f'{name}.png'))
        hint = cv2.imread(str(visualization / f'{name}_HINT_demo_denoise_quick.png'))
        panels = {}
        for col, column in enumerate(demo.COLUMNS):
            top, left = corners[row, col]
            panels[column] = figure[top:top + demo.PANEL, left:left + demo.PANEL]
            assert panels[column].shape == (demo.PANEL, demo.PANEL, 3)
            label = figure[top - demo.LABEL_HEIGHT:top, left:left + demo.PANEL]
            assert label.min() < 100 and label.max() == 255  # dark text on white
        np.testing.assert_array_equal(panels['clean'], demo.panel_image(clean))
        np.testing.assert_array_equal(panels['hint'], demo.panel_image(hint))
        assert not np.array_equal(panels['noisy'], panels['clean'])
        assert not np.array_equal(panels['nlm'], panels['noisy'])


@pytest.mark.slow
def test_quick_demo_keeps_photos_apart_and_reuses_its_lmdb(quick_demo, monkeypatch):
    workdir, output = quick_demo
    # the rebuild below runs tools/create_lmdb.py in this process (the demo run by the fixture started it afresh)
    monkeypatch.setattr(demo, 'run_tool', run_tool_in_process(demo.DemoError))
    lmdb = workdir / demo.TRAIN_LMDB_DIR / 'gt.lmdb'
    keys = [line.split('.')[0] for line in (lmdb / 'meta_info.txt').read_text().splitlines()]
    assert {key.rsplit('_', 1)[0] for key in keys} == set(demo.TRAIN_PHOTOS)  # tiles <photo>_<index>
    assert not set(demo.TRAIN_PHOTOS.values()) & set(demo.HELDOUT_PHOTOS.values())
    assert sorted(p.stem for p in (workdir / demo.HELDOUT_DIR).iterdir()) == HELDOUT
    command = re.search(r'python \S*tools/inference\.py -i YOUR_IMAGE\.png -o \S+ --weights (\S+) --config (\S+)',
                        output)
    assert command, output[-2000:]
    assert (workdir / command.group(1)).is_file() and (workdir / command.group(2)).is_file()

    modified = (lmdb / 'data.mdb').stat().st_mtime_ns
    demo.prepare_datasets(str(workdir))  # a re-run keeps the LMDB that holds the same photos
    assert (lmdb / 'data.mdb').stat().st_mtime_ns == modified
    demo.prepare_datasets(str(workdir), train_photos={'astronaut': 'astronaut.png'})  # other photos: rebuilt
    assert (lmdb / 'meta_info.txt').read_text().splitlines() == [
        f'astronaut_{i:02d}.png (128,128,3) {demo.LMDB_COMPRESS_LEVEL}' for i in range(16)]  # 512 / 128 = 4 by 4


def test_tiles_cover_the_whole_photo():
    image = np.arange(300 * 200 * 3, dtype=np.int64).reshape(300, 200, 3)
    pieces = demo.tiles(image, 128)
    assert len(pieces) == 3 * 2 and all(piece.shape == (128, 128, 3) for piece in pieces)
    np.testing.assert_array_equal(pieces[0], image[:128, :128])
    np.testing.assert_array_equal(pieces[-1], image[-128:, -128:])  # the last ones flush with the edges


def test_a_photo_cannot_be_both_trained_on_and_held_out(tmp_path):
    with pytest.raises(demo.DemoError, match='both in training and held out'):
        demo.prepare_datasets(str(tmp_path), train_photos={'a': 'coffee.png'}, heldout_photos={'b': 'coffee.png'})


def fake_photo(name, seed, size=(150, 170)):
    rng = np.random.default_rng(seed)
    images = {kind: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for kind in ('clean', 'noisy', 'nlm', 'hint')}
    photo = demo.Photo(name, clean=images['clean'], noisy=images['noisy'], nlm=images['nlm'], hint=images['hint'])
    photo.scores = {method: {'psnr': 20.0 + i + seed, 'ssim': 0.1 * (i + 1)} for i, method in enumerate(demo.METHODS)}
    return photo


def test_table_has_one_row_per_photo_and_the_means():
    rows = table_rows(demo.format_table([fake_photo('a', 0), fake_photo('b', 1)]))
    assert rows == [TABLE_HEADER,
                    ['a', '20.00', '0.1000', '21.00', '0.2000', '22.00', '0.3000'],
                    ['b', '21.00', '0.1000', '22.00', '0.2000', '23.00', '0.3000'],
                    ['**mean**', '20.50', '0.1000', '21.50', '0.2000', '22.50', '0.3000']]


def test_figure_places_zoomed_central_crops_under_labels(tmp_path):
    photos = [fake_photo('a', 0), fake_photo('b', 1, size=(100, 90))]  # b: smaller than a crop
    path = demo.write_figure(photos, nlm_strength=15, path=str(tmp_path / 'fig.png'))
    figure = cv2.imread(path)
    (height, width), corners = demo.figure_layout(2)
    assert figure.shape == (height, width, 3)
    for (row, col), (top, left) in corners.items():
        expected = demo.panel_image(getattr(photos[row], demo.COLUMNS[col]))
        np.testing.assert_array_equal(figure[top:top + expected.shape[0], left:left + expected.shape[1]], expected)
    assert demo.panel_image(photos[0].clean).shape == (demo.PANEL, demo.PANEL, 3)
    assert demo.panel_image(photos[1].clean).shape == (100 * demo.ZOOM, 90 * demo.ZOOM, 3)
    assert demo.panel_label(photos[0], 'nlm', 15) == 'NLM (h=15) 21.00 dB'
    assert demo.panel_label(photos[0], 'clean', 15) == 'clean: a'


def test_logged_metrics_are_read_from_basicsr_validation_log():
    log = ('2026-01-01 00:00:00,000 INFO: Validation other\n\t # psnr: 1.0000\n'
           '2026-01-01 00:00:01,000 INFO: Validation photos_sigma25\n'
           '\t # psnr: 29.1234\tBest: 29.1234 @ demo iter\n\t # ssim: 0.8123\tBest: 0.8123 @ demo iter\n\n')
    assert demo.logged_metrics(log, 'photos_sigma25') == {'psnr': 29.1234, 'ssim': 0.8123}
    with pytest.raises(demo.DemoError):
        demo.logged_metrics(log, 'missing')
