"""tools/inference.py and hint_plugin.inference: images keep their form, inputs are safe, failures are reported.

Most checks call the library in-process; the command line runs as a subprocess for its success path (the
command's fresh start), and through its main in this process for the failures (a bad image, a checkpoint of
another architecture), since each start costs seconds.
"""
import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from hint_plugin import inference
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.errors import CheckpointError, ImageError, OptionsError
from hint_plugin.utils import image_io
from hint_plugin.cli import inference as command

REPO = Path(__file__).resolve().parents[1]
TINY = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One intra-op thread: on a small, shared CPU two threads of tiny convolutions mostly wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smooth_image(rng, shape, dtype=np.uint8):
    """Blurred noise scaled to ``dtype``'s range: image-like content that JPEG and the network handle sanely."""
    noise = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (7, 7), 0)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.rint(noise * np.iinfo(dtype).max).astype(dtype)


def write(path, image, *params):
    assert cv2.imwrite(str(path), image, list(params)), path
    return path


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def net():
    """The tiny HINT with its output convolution scaled down: close to the identity, as a trained model is."""
    torch.manual_seed(0)
    network = HINT(**TINY).eval().requires_grad_(False)
    network.output.weight.mul_(0.05)
    return network


@pytest.fixture(scope='module')
def assets(tmp_path_factory, net):
    """Checkpoints, option files and image folders, written once for the module."""
    root = tmp_path_factory.mktemp('inference')
    rng = np.random.default_rng(0)
    checkpoint = root / 'tiny.pth'
    torch.save({'params': net.state_dict()}, checkpoint)
    other = root / 'other_arch.pth'
    torch.save({'params': torch.nn.Conv2d(3, 3, 3).state_dict()}, other)
    config = root / 'tiny.yml'
    config.write_text(yaml.safe_dump({'network_g': {'type': 'HINT', **TINY}}))
    test_opt = root / 'tiny_test.yml'
    test_opt.write_text(yaml.safe_dump({
        'name': 'tiny', 'model_type': 'HINTModel', 'network_g': {'type': 'HINT', **TINY},
        'path': {'pretrain_network_g': str(checkpoint), 'param_key_g': 'params', 'strict_load_g': True},
        'val': {'window_size': 8, 'tile': {'size': 64, 'overlap': 16}}}))

    images = root / 'images'
    images.mkdir()
    rgba = smooth_image(rng, (30, 41, 4))
    rgba[..., 3] = rng.integers(0, 256, (30, 41), dtype=np.uint8)  # alpha unlike anything the network makes
    write(images / 'odd.png', smooth_image(rng, (37, 45, 3)))
    write(images / 'deep.png', smooth_image(rng, (29, 34, 3), np.uint16))
    write(images / 'gray.png', smooth_image(rng, (33, 27)))
    write(images / 'rgba.png', rgba)
    write(images / 'photo.jpg', smooth_image(rng, (40, 52, 3)), cv2.IMWRITE_JPEG_QUALITY, 90)
    write(images / 'scan.tif', smooth_image(rng, (26, 31, 3), np.uint16))
    (images / 'notes.txt').write_text('not an image: a folder input skips it')

    broken = root / 'broken'
    broken.mkdir()
    write(broken / 'a.png', smooth_image(rng, (24, 30, 3)))
    write(broken / 'c.jpg', smooth_image(rng, (32, 24, 3)))
    whole = cv2.imencode('.jpg', smooth_image(rng, (48, 40, 3)))[1].tobytes()
    (broken / 'b_truncated.jpg').write_bytes(whole[:len(whole) * 2 // 3])
    assert cv2.imread(str(broken / 'b_truncated.jpg'), cv2.IMREAD_UNCHANGED) is not None  # grey-filled, no error

    inputs = sorted(images.iterdir()) + sorted(broken.iterdir())
    digests = {path: digest(path) for path in inputs}
    yield dict(root=root, checkpoint=checkpoint, other=other, config=config, test_opt=test_opt, images=images,
               broken=broken)
    assert {path: digest(path) for path in inputs} == digests, 'an input file was modified'


# --------------------------------------------------------------------------------------------- forms
def test_every_image_keeps_size_depth_channels_alpha_and_format(assets, net, tmp_path):
    summary = inference.restore_files([assets['images']], tmp_path, net)
    assert summary.ok and str(summary) == 'restored 6 of 6 images'
    for source_path, output_path in summary.restored:
        source = cv2.imread(str(source_path), cv2.IMREAD_UNCHANGED)
        restored = cv2.imread(output_path, cv2.IMREAD_UNCHANGED)
        assert Path(output_path) == tmp_path / Path(source_path).name
        assert (restored.shape, restored.dtype) == (source.shape, source.dtype), source_path
        assert not np.array_equal(restored, source), source_path  # the network did something
    gray = cv2.imread(str(tmp_path / 'gray.png'), cv2.IMREAD_UNCHANGED)
    assert gray.ndim == 2
    source, restored = (cv2.imread(str(folder / 'rgba.png'), cv2.IMREAD_UNCHANGED)
                        for folder in (assets['images'], tmp_path))
    assert np.array_equal(restored[..., 3], source[..., 3])
    assert np.abs(restored[..., :3].astype(int) - source[..., :3]).mean() < 8  # colour restored, not scrambled
    deep = cv2.imread(str(tmp_path / 'deep.png'), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and len(np.unique(deep % 257)) > 1  # real 16-bit levels, not 8-bit ones
    with open(tmp_path / 'photo.jpg', 'rb') as file:
        assert file.read(2) == b'\xff\xd8'


def test_conversion_round_trip_is_exact_for_every_form():
    rng = np.random.default_rng(1)
    shapes = [(9, 7), (9, 7, 1), (9, 7, 2), (9, 7, 3), (9, 7, 4)]
    for dtype in (np.uint8, np.uint16):
        for shape in shapes:
            image = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
            rgb, alpha = image_io.to_rgb_float(image)
            assert rgb.shape == (9, 7, 3) and rgb.dtype == np.float32
            back = image_io.from_rgb_float(rgb, image, alpha)
            assert back.dtype == image.dtype and np.array_equal(back, image), (dtype, shape)
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order is the last channel of the network's RGB
    assert np.array_equal(image_io.to_rgb_float(bgr)[0][0, 0], [0, 0, 1])
    with pytest.raises(image_io.ImageError, match='8- and 16-bit'):
        image_io.to_rgb_float(np.zeros((4, 4, 3), np.float32))


# --------------------------------------------------------------------------------------------- safety
def test_inputs_are_never_overwritten(assets, net, tmp_path):
    folder = tmp_path / 'in_place'
    folder.mkdir()
    for name in ('x.png', 'x_r.png', 'y.jpg'):
        write(folder / name, smooth_image(np.random.default_rng(2), (20, 18, 3)))
    before = {path.name: digest(path) for path in folder.iterdir()}

    summary = inference.restore_files([folder], folder, net, overwrite=True)  # -o is the input folder
    assert summary.restored == [] and len(summary.failed) == 3
    assert all(reason == 'the output would overwrite the input itself' for _, reason in summary.failed)

    summary = inference.restore_files([folder], folder, net, suffix='_r', overwrite=True)
    assert dict(summary.failed) == {str(folder / 'x.png'): f'the output would overwrite the input {folder}/x_r.png'}
    assert sorted(Path(out).name for _, out in summary.restored) == ['x_r_r.png', 'y_r.jpg']
    assert {name: digest(folder / name) for name in before} == before

    summary = inference.restore_files([folder / 'y.jpg'], folder, net, suffix='_r')  # y_r.jpg now exists
    assert 'exists (use --overwrite' in dict(summary.failed)[str(folder / 'y.jpg')]
    assert summary.total == 1 and not summary.ok

    twins = [tmp_path / 'a' / 'same.png', tmp_path / 'b' / 'same.png']
    for path in twins:
        path.parent.mkdir()
        write(path, smooth_image(np.random.default_rng(3), (16, 16, 3)))
    summary = inference.restore_files(twins, tmp_path / 'out', net, overwrite=True)
    assert len(summary.restored) == 1 and 'already written for' in summary.failed[0][1]


def test_truncated_and_missing_files_are_named_and_skipped(assets, net, tmp_path):
    messages = []
    missing = str(assets['root'] / 'nowhere.png')
    summary = inference.restore_files([assets['broken'], missing], tmp_path, net, log=messages.append)
    failed = dict(summary.failed)
    assert len(summary.restored) == 2 and summary.total == 4
    assert failed[str(assets['broken'] / 'b_truncated.jpg')].startswith('truncated JPEG')
    assert failed[missing] == 'no such file or folder'
    assert any('b_truncated.jpg' in message for message in messages)
    assert str(summary).startswith('restored 2 of 4 images, 2 failed: ') and 'b_truncated.jpg (' in str(summary)
    with pytest.raises(ImageError, match='no input images'):
        inference.restore_files([missing], tmp_path, net)


def test_checkpoint_of_another_architecture_is_one_line_and_exit_2(assets, tmp_path, capsys):
    code = command.main(['-i', str(assets['images']), '-o', str(tmp_path / 'out'), '--weights', str(assets['other']),
                           '--config', str(assets['config'])])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ''
    assert captured.err.count('\n') == 1 and captured.err.startswith('error: '), captured.err
    assert 'does not fit HINT' in captured.err and 'missing keys (' in captured.err
    assert 'unexpected keys (bias, weight)' in captured.err
    assert not (tmp_path / 'out').exists()


def test_a_pickle_that_runs_code_is_refused_and_never_runs(assets, tmp_path, capsys):
    config = assets['config']
    marker = tmp_path / 'MARKER'

    class Payload:
        def __reduce__(self):
            return Path.write_text, (marker, 'code ran while unpickling')

    live = pickle.dumps(Payload())
    pickle.loads(live)  # the payload is live: plain unpickling runs it
    assert marker.exists()
    marker.unlink()

    evil = tmp_path / 'evil.pth'
    torch.save({'params': {'weight': Payload()}}, evil)
    with pytest.raises(CheckpointError, match='refused'):
        inference.load_network({'type': 'HINT', **TINY}, evil)
    assert command.main(['-i', str(tmp_path), '-o', str(tmp_path / 'out'), '--weights', str(evil),
                           '--config', str(config), '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ') and 'refused' in err
    assert not marker.exists()


def test_checkpoint_layouts_and_setup_errors(assets, net, tmp_path, capsys):
    state = net.state_dict()
    other = {key: torch.zeros_like(value) for key, value in state.items()}
    for name, checkpoint in (('bare', state), ('ema', {'params_ema': state, 'params': other})):
        torch.save(checkpoint, tmp_path / f'{name}.pth')
        loaded = inference.load_network({'type': 'HINT', **TINY}, tmp_path / f'{name}.pth')
        assert all(torch.equal(loaded.state_dict()[key], value) for key, value in state.items()), name
        assert not loaded.training

    def run(*args):
        code = command.main(['-i', str(assets['images'] / 'odd.png'), '-o', str(tmp_path / 'o'), *args])
        return code, capsys.readouterr().err

    wide = tmp_path / 'wide.yml'  # the default HINT: wider than the tiny checkpoint
    wide.write_text('network_g: {type: HINT}\n')
    for args, says in ((['--config', str(assets['config'])], 'give --opt'),
                       (['--opt', str(assets['test_opt']), '--config', str(assets['config'])], 'not both'),
                       (['--weights', str(tmp_path / 'none.pth'), '--config', str(assets['config'])],
                        'checkpoint not found'),
                       (['--opt', str(tmp_path / 'none.yml')], 'cannot read option file'),
                       (['--weights', str(assets['checkpoint']), '--config', str(assets['checkpoint'])],
                        'not a YAML option file'),
                       (['--weights', str(assets['checkpoint']), '--config', str(assets['test_opt'] / 'x')],
                        'cannot read option file'),
                       (['--weights', str(assets['checkpoint']), '--config', str(wide)], 'does not fit HINT'),
                       (['--weights', str(tmp_path / 'none.pth')], 'checkpoint not found'),
                       (['--opt', str(assets['test_opt']), '--device', 'tpu'], 'device')):
        code, err = run(*args)
        assert code == 2 and says in err and err.count('\n') == 1, (args, err)


def test_test_yaml_sets_network_checkpoint_and_tiling(assets):
    setup = inference.resolve_setup(opt=assets['test_opt'])
    assert (setup.network_opt, setup.weights, setup.param_key) == ({'type': 'HINT', **TINY},
                                                                     str(assets['checkpoint']), 'params')
    assert (setup.tile, setup.overlap, setup.window_size) == (64, 16, 8)
    setup = inference.resolve_setup(opt=assets['test_opt'], tile=0, overlap=8, param_key='params_ema')
    assert (setup.tile, setup.overlap, setup.param_key) == (None, 8, 'params_ema')
    # weights alone: the network detected from the weights (the tiny HINT, not the default one)
    setup = inference.resolve_setup(weights=str(assets['checkpoint']), param_key='params')
    assert setup.param_key == 'params' and setup.tile is None
    built = inference.load_network(setup.network_opt, setup.weights, setup.param_key)
    assert built.dim == TINY['dim'] and setup.network_opt['num_blocks'][:3] == TINY['num_blocks'][:3]


def test_weights_of_another_network_without_config_ask_for_one(tmp_path):
    path = tmp_path / 'conv.pth'
    torch.save({'params': torch.nn.Conv2d(3, 3, 3).state_dict()}, path)
    with pytest.raises(OptionsError, match='cannot be told from these weights.*give --config'):
        inference.resolve_setup(weights=str(path))


# --------------------------------------------------------------------------------------------- tiling
class Counting:
    def __init__(self, forward, fail_above=None):
        self.forward, self.fail_above, self.shapes = forward, fail_above, []

    def __call__(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        if self.fail_above is not None and x.shape[-2] * x.shape[-1] > self.fail_above:
            raise RuntimeError('[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can\'t allocate memory: '
                               'you tried to allocate 123456789 bytes')
        return self.forward(x)


def test_tiles_equal_untiled_when_one_covers_the_image_and_are_close_otherwise(net):
    image = smooth_image(np.random.default_rng(4), (53, 71, 3))
    untiled = inference.restore_array(net, image)
    covering = Counting(net)
    assert np.array_equal(inference.restore_array(covering, image, tile=72, overlap=16), untiled)
    assert covering.shapes == [(56, 72)]
    tiled = Counting(net)
    result = inference.restore_array(tiled, image, tile=32, overlap=16)
    assert len(tiled.shapes) > 4 and set(tiled.shapes) == {(32, 32)}
    assert np.abs(result.astype(int) - untiled).max() <= 6  # HINT's statistics are per tile; no misplacement

    torch.manual_seed(0)  # a local operator: tiles blend back to the untiled result up to rounding
    conv = torch.nn.Conv2d(3, 3, 3, padding=1, padding_mode='replicate').requires_grad_(False)
    conv.weight.mul_(0.1)
    conv.weight[:, :, 1, 1] += torch.eye(3)
    local = inference.restore_array(conv, image, tile=24, overlap=16)
    assert np.abs(local.astype(int) - inference.restore_array(conv, image)).max() <= 1


def test_out_of_memory_falls_back_to_smaller_tiles(net):
    image = smooth_image(np.random.default_rng(5), (53, 71, 3))
    messages = []
    limited = Counting(net, fail_above=40 * 40)
    result = inference.restore_array(limited, image, overlap=8, min_tile=16, log=messages.append, name='big.png')
    assert limited.shapes[0] == (56, 72) and set(limited.shapes[1:]) == {(32, 32)}  # 72 -> 32 (half, to 8)
    assert np.array_equal(result, inference.restore_array(net, image, tile=32, overlap=8))
    assert len(messages) == 1 and 'big.png: out of memory' in messages[0] and 'tiles of 32' in messages[0]

    with pytest.raises(RuntimeError, match='no smaller tile'):  # the default floor of 64 px is still too big
        inference.restore_array(Counting(net, fail_above=40 * 40), image, log=messages.append)
    def broken(x):
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):  # other errors are not taken for memory
        inference.restore_array(broken, image)
    assert inference.is_out_of_memory(torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB'))
    assert inference.smaller_tile(None, 1000, 700) == 496 and inference.smaller_tile(64, 1000, 700) is None


def test_glob_and_explicit_inputs(assets, net, tmp_path):
    files, problems = inference.collect_inputs([str(assets['images'] / '*.png'), str(assets['images'] / 'odd.png'),
                                                str(assets['images'] / '*.bmp')])
    assert [Path(path).name for path in files] == ['deep.png', 'gray.png', 'odd.png', 'rgba.png']  # once each
    assert problems == [(str(assets['images'] / '*.bmp'), 'no image file matches this pattern')]
    summary = inference.restore_files(str(assets['images'] / 's*.tif'), tmp_path, net, tile=16, overlap=8)
    assert summary.ok and [Path(out).name for _, out in summary.restored] == ['scan.tif']


# --------------------------------------------------------------------------------------------- command line
def test_cli_restores_globs_and_files_with_a_test_yaml(assets, tmp_path):
    # python tools/inference.py in a fresh interpreter, as a user runs it
    tool = str(REPO / 'tools' / 'inference.py')
    result = subprocess.run([sys.executable, tool, '-i', str(assets['images'] / '*.png'),
                             str(assets['images'] / 'photo.jpg'), '-o', str(tmp_path / 'ok'), '--opt',
                             str(assets['test_opt']), '--device', 'cpu'], cwd=assets['root'],
                            env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True, timeout=300)
    code, stdout, stderr = result.returncode, result.stdout, result.stderr
    assert code == 0, stderr
    assert 'restored 5 of 5 images' in stdout
    names = sorted(path.name for path in (tmp_path / 'ok').iterdir())
    assert names == ['deep.png', 'gray.png', 'odd.png', 'photo.jpg', 'rgba.png']
    for name in names:
        source = cv2.imread(str(assets['images'] / name), cv2.IMREAD_UNCHANGED)
        restored = cv2.imread(str(tmp_path / 'ok' / name), cv2.IMREAD_UNCHANGED)
        assert (restored.shape, restored.dtype) == (source.shape, source.dtype), name


def test_cli_names_the_truncated_jpeg_restores_the_rest_and_exits_1(assets, tmp_path, monkeypatch, capfd):
    # the command's main in this process (its fresh start: the test above); capfd also takes what OpenCV's C code
    # writes to the file descriptors, as the terminal would show it
    monkeypatch.chdir(assets['root'])
    code = command.main(['-i', str(assets['broken']), '-o', str(tmp_path / 'bad_image'), '--weights',
                         str(assets['checkpoint']), '--config', str(assets['config']), '--tile', '16',
                         '--tile-overlap', '8'])
    stdout, stderr = capfd.readouterr()
    assert code == 1, stdout + stderr
    assert 'Traceback' not in stderr
    assert 'b_truncated.jpg' in stderr and 'truncated JPEG' in stderr
    summary = stderr.strip().splitlines()[-1]
    assert summary.startswith('restored 2 of 3 images, 1 failed: ') and 'b_truncated.jpg (truncated' in summary
    assert sorted(path.name for path in (tmp_path / 'bad_image').iterdir()) == ['a.png', 'c.jpg']


# --------------------------------------------------------------------------------------------- whole or tiles
def test_memory_estimate_grows_with_the_padded_pixels_and_the_width(net):
    weights = sum(parameter.numel() * 4 for parameter in net.parameters())
    per_pixel = inference.FORWARD_BYTES_PER_PIXEL_PER_DIM * net.dim
    assert inference.forward_memory(net, 64, 64) == weights + per_pixel * 64 * 64
    assert inference.forward_memory(net, 57, 60) == inference.forward_memory(net, 64, 64)  # padded to 8
    assert inference.forward_memory(torch.nn.Conv2d(3, 3, 3), 64, 64) is None  # no estimate for other networks
    assert inference.plan_tile(torch.nn.Conv2d(3, 3, 3), 64, 64, 1) == (None, None)


def test_plan_tile_keeps_images_whole_while_they_fit_and_tiles_the_others(net):
    height, width = 300, 200
    needed = inference.forward_memory(net, height, width) + inference.IMAGE_BYTES_PER_PIXEL * height * width
    assert inference.plan_tile(net, height, width, needed) == (None, needed)
    tile, reported = inference.plan_tile(net, height, width, needed - 1)
    assert reported == needed and tile is not None and tile % 8 == 0 and 64 <= tile < 300
    budget_of_tile = (inference.forward_memory(net, tile, tile) + inference.IMAGE_BYTES_PER_PIXEL * height * width)
    assert budget_of_tile <= needed - 1  # the tile fits what the image's own arrays leave
    larger = tile + 8
    assert inference.forward_memory(net, larger, larger) + inference.IMAGE_BYTES_PER_PIXEL * height * width > needed - 1
    smaller_budget = inference.plan_tile(net, height, width, needed // 2)[0]
    assert smaller_budget < tile
    assert inference.plan_tile(net, height, width, 1, min_tile=96)[0] == 96  # nothing fits: the floor


def test_available_memory_is_a_positive_share_of_the_machine():
    available = inference.available_memory('cpu')
    assert 0 < available <= os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def test_images_over_max_memory_are_tiled_and_reported_with_the_estimate(net, tmp_path):
    image = smooth_image(np.random.default_rng(7), (160, 120, 3))
    source = write(tmp_path / 'large.png', image)
    small = write(tmp_path / 'small.png', image[:40, :40])
    needed = inference.forward_memory(net, 160, 120) + inference.IMAGE_BYTES_PER_PIXEL * 160 * 120
    messages, shapes = [], []
    hook = net.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape[-2:])))
    try:
        summary = inference.restore_files([str(source), str(small)], str(tmp_path / 'out'), net,
                                          log=messages.append, max_memory=needed - 1)
    finally:
        hook.remove()
    assert summary.ok and len(summary.restored) == 2
    (message, ) = messages
    assert 'large.png: 120x160 needs about' in message and 'more than --max-memory' in message
    tile = int(message.rsplit('tiles of ', 1)[1])
    large, small_shapes = shapes[:-1], shapes[-1:]
    if 'small.png' in str(summary.restored[0][0]):  # the folder order decides which image goes first
        small_shapes, large = shapes[:1], shapes[1:]
    assert len(large) > 1 and set(large) == {(min(tile, 160), min(tile, 120))}  # the large image in tiles
    assert small_shapes == [(40, 40)]  # the small one whole


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
    return 10 * np.log10(255.0**2 / mse) if mse else float('inf')


def test_tiles_planned_by_memory_stay_close_to_the_whole_pass(net):
    # an image that fits whole, restored in the tiles a smaller budget picks, against the whole pass. HINT's
    # attention statistics are per tile, so tiles differ from the whole pass everywhere, not only at seams: on this
    # untrained network by about 47 dB PSNR, whatever the overlap (32 to 64 px)
    image = smooth_image(np.random.default_rng(8), (192, 256, 3))
    whole = inference.restore_array(net, image)
    tile, _ = inference.plan_tile(net, 192, 256, inference.forward_memory(net, 128, 128)
                                  + inference.IMAGE_BYTES_PER_PIXEL * 192 * 256)
    assert tile == 128
    tiled = inference.restore_array(net, image, tile=tile, overlap=inference.DEFAULT_OVERLAP)
    assert psnr(tiled, whole) >= 45
