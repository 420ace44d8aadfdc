"""Inference precision: bf16 / fp16 close to fp32, the attention's reductions safe in half precision, refusals."""
import numpy as np
import pytest
import torch

from hint_plugin.cli import inference
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import channel_correlation
from hint_plugin.archs.ops import normalize_tokens
from hint_plugin.precision import PrecisionError, check_precision, with_precision
from studies.precision_table import ChannelOrders, add_noise, format_rows, main as precision_table, precision_rows, psnr
from hint_plugin.utils.image_io import read_image, write_image


@pytest.fixture(scope='module')
def tiny_net():
    torch.manual_seed(0)
    return HINT(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1).eval().requires_grad_(False)


def photo(size=48):
    """A crop of a real photograph (skimage's astronaut) as (1, 3, size, size) in [0, 1]."""
    from skimage import data
    return torch.from_numpy(data.astronaut()[180:180 + size, 200:200 + size]).permute(2, 0, 1)[None].float() / 255


def test_bf16_and_fp16_are_close_to_fp32_with_the_same_channel_orders(tiny_net):
    rows = {row['precision']: row for row in precision_rows(tiny_net, [photo()], same_order=True)}
    assert rows['fp32']['psnr'] == float('inf') and rows['fp32']['max_abs'] == 0
    assert all(row['finite'] for row in rows.values())
    assert rows['bf16']['psnr'] > 40 and rows['bf16']['max_abs'] < 0.05
    assert rows['fp16']['psnr'] > 55


def test_precision_table_scores_each_precision_against_the_clean_image_under_seeded_noise(tiny_net, capsys):
    clean = [photo(), photo(32)]
    noisy = add_noise(clean, 25, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(noisy, add_noise(clean, 25, seed=3)))
    assert abs((noisy[0] - clean[0]).std().item() * 255 - 25) < 2
    rows = precision_rows(tiny_net, noisy, ('fp32', 'bf16'), clean=clean)
    with torch.inference_mode():
        expected = sum(psnr(tiny_net(n), c) for n, c in zip(noisy, clean)) / 2
    assert rows[0]['psnr_clean'] == pytest.approx(expected, abs=1e-6)
    assert abs(rows[1]['psnr_clean'] - rows[0]['psnr_clean']) < 1
    assert '| PSNR vs clean (dB) |' in format_rows(rows).splitlines()[0]
    assert 'PSNR vs clean' not in format_rows(precision_rows(tiny_net, clean[:1], ('fp32',)))
    assert precision_table(['--crop', '32', '--precisions', 'fp32', '--noise-sigma', '25']) == 0
    assert 'noise sigma 25, seed 0' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        precision_table(['--noise-sigma', '-1'])


def test_with_precision_keeps_the_input_dtype_and_fp32_is_the_network_itself(tiny_net):
    assert with_precision(tiny_net, 'fp32') is tiny_net
    wrapped = with_precision(tiny_net, 'bf16')
    image = photo(24)
    with torch.no_grad():
        output = wrapped(image)
    assert output.dtype == torch.float32 and output.shape == image.shape


def test_channel_orders_are_replayed_in_sequence(tiny_net):
    recorder = ChannelOrders()
    with torch.no_grad(), recorder.recording():
        reference = tiny_net(photo(24))
    assert len(recorder.orders) == 5  # latent, decoder 3, 2, 1, refinement: one attention block each
    with torch.no_grad(), recorder.replaying():
        assert torch.equal(tiny_net(photo(24)), reference)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_token_norms_and_correlations_do_not_overflow_in_half_precision(dtype):
    torch.manual_seed(0)
    tokens = (torch.randn(1, 4096, 8) * 300).to(dtype)  # a sum of squares near 4e8, far past float16's 65504
    normalized = normalize_tokens(tokens)
    assert normalized.dtype == dtype and torch.isfinite(normalized).all()
    torch.testing.assert_close(normalized.float(), normalize_tokens(tokens.float()), rtol=0, atol=1e-2)
    correlation = channel_correlation(tokens)
    assert torch.isfinite(correlation).all()
    torch.testing.assert_close(correlation, channel_correlation(tokens.float()), rtol=0, atol=1e-5)
    with torch.autocast('cpu', dtype=dtype):  # autocast would run the covariance product in half precision
        assert torch.isfinite(channel_correlation(tokens.float())).all()


def test_precisions_are_refused_where_the_device_cannot_run_them():
    assert check_precision('fp32', 'meta') == torch.float32
    with pytest.raises(PrecisionError, match='one of fp32, bf16, fp16'):
        check_precision('fp8', 'cpu')
    with pytest.raises(PrecisionError, match='bf16 is not available on meta'):
        check_precision('bf16', 'meta')
    if not torch.cuda.is_available():
        with pytest.raises(PrecisionError, match='CUDA is not available'):
            check_precision('fp16', 'cuda')


def test_command_line_precision(tmp_path, tiny_net, capsys):
    checkpoint = tmp_path / 'tiny.pth'
    torch.save({'params': tiny_net.state_dict()}, checkpoint)
    config = tmp_path / 'net.yml'
    config.write_text('network_g: {type: HINT, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}\n')
    rgb = (photo(40)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    write_image(str(tmp_path / 'in.png'), np.ascontiguousarray(rgb[..., ::-1]))
    common = ['-i', str(tmp_path / 'in.png'), '--weights', str(checkpoint), '--config', str(config),
              '--device', 'cpu', '--no-progress']
    assert inference.main([*common, '-o', str(tmp_path / 'fp32')]) == 0
    assert inference.main([*common, '-o', str(tmp_path / 'bf16'), '--precision', 'bf16']) == 0
    full, half = (read_image(str(tmp_path / name / 'in.png')) for name in ('fp32', 'bf16'))
    assert half.shape == full.shape and half.dtype == np.uint8
    assert np.abs(half.astype(int) - full.astype(int)).mean() < 8  # channel-order swaps allowed, not garbage
    with pytest.raises(SystemExit):
        inference.main([*common, '-o', str(tmp_path / 'x'), '--precision', 'fp8'])
