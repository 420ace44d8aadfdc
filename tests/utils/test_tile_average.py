"""The authors' tiled testing: their tile grid and plain averaging (``val.tile.merge: average``)."""
import pytest
import torch

from hint_plugin.utils.tiling import authors_tile_starts, restore_average


def test_grid_of_the_lolv2_real_script_and_of_snow100k():
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

    image = torch.zeros(1, 1, 8, 12)
    out = restore_average(forward, image, tile=8, overlap=4, window_size=1)
    assert calls == [(8, 8), (8, 8)]  # columns start at 0 and 4
    assert out[0, 0, 0].tolist() == [0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1]


def test_identity_survives_tiling_and_padding():
    image = torch.rand(2, 3, 21, 30)
    out = restore_average(lambda x: x * 1.0, image, tile=16, overlap=6, window_size=7)  # tiles padded to 21
    torch.testing.assert_close(out, image)
    with pytest.raises(ValueError, match='overlap'):
        restore_average(lambda x: x, image, tile=16, overlap=16)
