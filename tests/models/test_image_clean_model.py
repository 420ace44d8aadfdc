"""ImageCleanModel's validation is SRModel's (val.pbar works) with the authors' val.use_image and val.rgb2bgr."""
import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_psnr
from basicsr.models import build_model
from basicsr.utils import tensor2img
from torch.utils.data import DataLoader, Dataset

from hint_plugin.models.image_clean_model import float_image
from tests.helpers import model_options

PSNR = {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}


class Pairs(Dataset):
    """Three random 16 x 16 pairs as BasicSR's validation loaders give them."""
    opt = {'name': 'pairs'}

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.items = [{'lq': torch.rand(3, 16, 16, generator=generator),
                       'gt': torch.rand(3, 16, 16, generator=generator), 'lq_path': f'{index}.png'} for index in range(3)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def validated(tmp_path, **val):
    tmp_path.mkdir(exist_ok=True)
    options = model_options(tmp_path, is_train=False)
    options.update(model_type='ImageCleanModel',
                   val={'save_img': True, 'suffix': 'x', 'metrics': {'psnr': PSNR}, **val})
    options['path']['visualization'] = str(tmp_path / 'visualization')
    torch.manual_seed(0)
    model = build_model(options)
    model.validation(DataLoader(Pairs()), 'test', None, save_img=True)
    return model


def expected_psnr(model, to_image):
    """The mean PSNR over the pairs, each output clipped to [0, 1] and turned into a metric image by ``to_image``."""
    values = []
    model.net_g.eval()  # as in validation
    for item in Pairs():
        with torch.no_grad():
            output = model.net_g(item['lq'][None]).clamp(0, 1)
        values.append(calculate_psnr(to_image(output), to_image(item['gt'][None]), crop_border=0))
    return float(np.mean(values))


def test_pbar_and_float_metrics(tmp_path, capsys):
    model = validated(tmp_path / 'float', pbar=True, use_image=False)
    assert 'Test 2' in capsys.readouterr().err  # SRModel's progress bar, named after the last image
    assert model.metric_results['psnr'] == pytest.approx(expected_psnr(model, float_image), abs=1e-9)
    assert model.best_metric_results['pairs']['psnr']['val'] == model.metric_results['psnr']
    saved = sorted(path.name for path in (tmp_path / 'float' / 'visualization' / 'pairs').iterdir())
    assert saved == ['0_x.png', '1_x.png', '2_x.png']

    eight_bit = validated(tmp_path / 'uint8', use_image=True)  # BasicSR's way: 8-bit images
    assert capsys.readouterr().err == ''
    assert eight_bit.metric_results['psnr'] == pytest.approx(expected_psnr(eight_bit, lambda x: tensor2img([x])))
    assert eight_bit.metric_results['psnr'] != pytest.approx(model.metric_results['psnr'], abs=1e-6)


def test_rgb2bgr_false_saves_and_measures_rgb(tmp_path):
    model = validated(tmp_path, rgb2bgr=False, use_image=False)
    with torch.no_grad():
        output = model.net_g.eval()(Pairs()[0]['lq'][None])
    saved = cv2.imread(str(tmp_path / 'visualization' / 'pairs' / '0_x.png'))  # as written: the RGB order
    np.testing.assert_array_equal(saved, tensor2img([output], rgb2bgr=False))
    rgb = expected_psnr(model, lambda x: float_image(x, rgb2bgr=False))
    assert model.metric_results['psnr'] == pytest.approx(rgb, abs=1e-9)
