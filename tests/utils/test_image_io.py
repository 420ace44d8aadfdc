"""crop_center: the one centre crop, for (H, W, C) arrays and (..., H, W) tensors alike."""
import numpy as np
import torch

from hint_plugin.utils.image_io import crop_center


def test_crop_center_takes_the_middle_in_both_layouts_and_keeps_short_sides_whole():
    array = np.arange(30).reshape(5, 6, 1)
    assert crop_center(array, 3)[:, :, 0].tolist() == [[7, 8, 9], [13, 14, 15], [19, 20, 21]]
    tensor = torch.from_numpy(array[..., 0]).expand(1, 2, 5, 6)
    expected = torch.from_numpy(array[1:4, 1:4, 0]).expand(1, 2, 3, 3)
    assert torch.equal(crop_center(tensor, 3, channels_last=False), expected)
    assert crop_center(array, 4).shape == (4, 4, 1)  # odd margins: the extra row and column go to the end
    assert crop_center(array, 8).shape == (5, 6, 1) and crop_center(array[:2], 3).shape == (2, 3, 1)
