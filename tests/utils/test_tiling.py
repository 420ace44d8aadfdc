"""restore(): padding multiple, one-tile exactness, seamless overlapping tiles, one tile per call, HINT; the
authors' grid and plain averaging (``merge='average'``, ``val.tile.merge: average``)."""
import pytest
import torch
from torch.nn import functional as F

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.padding import pad_to_multiple
from hint_plugin.utils.tiling import authors_tile_starts, restore


class Recorder:
    """Wraps a forward and records the shape of every input it receives."""

    def __init__(self, forward):
        self.forward, self.shapes = forward, []

    def __call__(self, x):
        self.shapes.append(tuple(x.shape))
        return self.forward(x)


@pytest.fixture
def conv3x3():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, padding_mode='replicate').double()
    return torch.no_grad()(conv)  # RGB in, 5 channels out


def test_one_tile_is_bit_identical_to_untiled(conv3x3):
    image = torch.rand(2, 3, 37, 50, dtype=torch.float64)
    untiled = restore(conv3x3, image)
    assert untiled.shape == (2, 5, 37, 50)
    assert torch.equal(untiled, conv3x3(pad_to_multiple(image, 8))[..., :37, :50])
    forward = Recorder(conv3x3)
    assert torch.equal(restore(forward, image, tile=56, overlap=16), untiled)
    assert forward.shapes == [(2, 3, 40, 56)]


@pytest.mark.parametrize('size', [(37, 50), (64, 64), (8, 100), (101, 9)])
def test_identity_is_reproduced_with_padding_multiples_and_one_tile_per_call(size):
    image = torch.rand(2, 3, *size, dtype=torch.float64)
    forward = Recorder(lambda x: x)
    out = restore(forward, image, window_size=8, tile=24, overlap=8)
    assert out.shape == image.shape
    assert torch.allclose(out, image, atol=1e-12)
    assert len(forward.shapes) > 1
    for batch, channels, height, width in forward.shapes:
        assert (batch, channels) == (2, 3)  # tiles are never batched together
        assert height % 8 == 0 and width % 8 == 0 and height <= 24 and width <= 24


def test_tiles_cover_the_image_and_last_tile_meets_the_border():
    rows, cols = torch.meshgrid(torch.arange(90.), torch.arange(70.), indexing='ij')
    image = torch.stack([rows, cols])[None]  # each pixel holds its own coordinates
    seen = torch.zeros(96, 72)
    starts = []

    def mark(x):
        top, left = int(x[0, 0, 0, 0]), int(x[0, 1, 0, 0])  # a tile's first pixel always lies in the image
        starts.append((top, left))
        seen[top:top + x.shape[-2], left:left + x.shape[-1]] += 1
        return x

    restore(mark, image, window_size=8, tile=30, overlap=10)  # rounded: tile 24, overlap 16 -> stride 8
    assert seen.min() >= 1
    tops, lefts = sorted({t for t, _ in starts}), sorted({left for _, left in starts})
    assert tops == list(range(0, 73, 8)) and lefts == list(range(0, 49, 8))
    assert len(starts) == len(tops) * len(lefts)


def test_local_operator_is_seamless_over_many_tiles(conv3x3):
    image = torch.rand(1, 3, 150, 131, dtype=torch.float64)
    reference = restore(conv3x3, image)
    forward = Recorder(conv3x3)
    tiled = restore(forward, image, tile=48, overlap=16)
    assert len(forward.shapes) >= 9
    assert tiled.shape == (1, 5, 150, 131)
    error = (tiled - reference).abs()
    # Only the outermost pixel of a tile differs from the untiled conv, and its blend weight is ~0.24%.
    assert error.max() < 0.01 * reference.abs().max()
    assert error.mean() < 1e-4
    # without overlap the tile borders show as seams of the full size
    hard = restore(conv3x3, image, tile=48, overlap=0)
    assert (hard - reference).abs().max() > 10 * error.max()


def test_odd_sizes_are_cropped_back():
    forward = Recorder(lambda x: x.mean(1, keepdim=True))
    image = torch.rand(1, 3, 33, 47)
    out = restore(forward, image, window_size=16, tile=32, overlap=8)
    assert out.shape == (1, 1, 33, 47)
    assert torch.allclose(out, image.mean(1, keepdim=True), atol=1e-6)
    assert all(h % 16 == 0 and w % 16 == 0 for _, _, h, w in forward.shapes)


def test_small_hint_in_tiles():
    torch.manual_seed(0)
    net = HINT(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1).eval()
    image = torch.rand(1, 3, 40, 56)
    forward = Recorder(net)
    with torch.no_grad():
        out = restore(forward, image, window_size=8, tile=32, overlap=8)
    assert out.shape == (1, 3, 40, 56) and torch.isfinite(out).all()
    assert len(forward.shapes) == 2 * 2 and all(shape == (1, 3, 32, 32) for shape in forward.shapes)


@pytest.mark.parametrize('kwargs, message', [
    (dict(tile=0), 'tile'), (dict(overlap=-1), 'overlap'), (dict(window_size=0), 'window_size'),
    (dict(tile=32.0), 'tile')])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        restore(lambda x: x, torch.rand(1, 3, 16, 16), **kwargs)


def test_forward_that_changes_the_size_is_refused():
    with pytest.raises(ValueError, match='spatial size'):
        restore(lambda x: F.interpolate(x, scale_factor=2), torch.rand(1, 3, 64, 64), tile=32, overlap=8)


def test_authors_grid_of_the_lolv2_real_script_and_of_snow100k():
    # 600 wide, 384 tiles, overlap 350 -> stride 34: 0, 34, ..., 204 (238 + 384 would pass 600), then 216
    assert authors_tile_starts(600, 384, 34) == [0, 34, 68, 102, 136, 170, 204, 216]
    assert authors_tile_starts(400, 384, 34) == [0, 16]
    assert authors_tile_starts(640, 256, 128) == [0, 128, 256, 384]  # 384 + 256 = 640 reaches the border
    assert authors_tile_starts(200, 256, 128) == [0]


def test_average_of_tiles_is_the_plain_mean_where_they_overlap():
    calls = []

    def forward(tile):  # the k-th tile restores to the constant k
        calls.append(tuple(tile.shape[-2:]))
        return torch.full_like(tile, float(len(calls) - 1))

    out = restore(forward, torch.zeros(1, 1, 8, 12), window_size=1, tile=8, overlap=4, merge='average')
    assert calls == [(8, 8), (8, 8)]  # columns start at 0 and 4
    assert out[0, 0, 0].tolist() == [0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1]


def test_average_identity_survives_tiling_and_padding():
    image = torch.rand(2, 3, 21, 30)
    recorder = Recorder(lambda x: x * 1.0)
    out = restore(recorder, image, window_size=7, tile=16, overlap=6, merge='average')
    torch.testing.assert_close(out, image)
    assert set(recorder.shapes) == {(2, 3, 21, 21)}  # 16 x 16 tiles padded to a multiple of 7
    with pytest.raises(ValueError, match='overlap'):
        restore(lambda x: x, image, tile=16, overlap=16, merge='average')
    with pytest.raises(ValueError, match='merge'):
        restore(lambda x: x, image, tile=16, merge='median')
