"""Bad weights and what they would produce, each case named by what it feeds: integer (int64) tensors, NaN,
finite but huge weights (whose outputs overflow), damaged or incomplete files, and the command-line values that
used to be accepted and then blamed on something else. Every path (the loader, inference, export, conversion,
testing, spandrel) refuses them with a named error; nothing is written. All in-process."""
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from basicsr.models import build_model
from safetensors.torch import save_file

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.errors import CheckpointError, NonFiniteError, OptionsError
from hint_plugin.inference import load_network, resolve_setup, smallest_tile
from hint_plugin.utils.checkpoint import load_weights, read_state_dict
from tests.helpers import TINY_CONFIG, write_yaml
from hint_plugin.cli import convert_weights, export_onnx, inference


def tiny_state(change=None):
    """A tiny HINT's state dict, with ``change(name, tensor) -> tensor`` applied to every tensor."""
    torch.manual_seed(0)
    state = HINT(**TINY_CONFIG).state_dict()
    return {name: change(name, value) if change else value for name, value in state.items()}


def integer_state():
    """The input convolution stored as int64, the rest float32 (as a careless conversion might leave it)."""
    return tiny_state(lambda name, value: (value * 100).to(torch.int64) if name == 'patch_embed.proj.weight'
                      else value)


def huge_state():
    """Finite weights, each 1e30 times too large: the output overflows to NaN and infinity."""
    return tiny_state(lambda name, value: value * 1e30)


@pytest.fixture
def network_yaml(tmp_path):
    return write_yaml(tmp_path / 'net.yml', {'network_g': {'type': 'HINT', **TINY_CONFIG}})


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'in' / 'photo.png'
    path.parent.mkdir()
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return path


def run_inference(capsys, weights, network_yaml, image, output, *extra):
    status = inference.main(['--weights', str(weights), '--config', network_yaml, '-i', str(image), '-o',
                             str(output), '--no-progress', *extra])
    return status, capsys.readouterr().err


# ------------------------------------------------------------------------------------- integer weights
def test_int64_safetensors_weights_are_refused_by_the_loader_naming_file_key_and_type(tmp_path):
    path = tmp_path / 'ints.safetensors'
    save_file(integer_state(), str(path))
    with pytest.raises(CheckpointError, match=r"ints.safetensors: tensor 'patch_embed.proj.weight' holds "
                                              r'torch.int64 values where HINT has torch.float32 weights'):
        load_weights(HINT(**TINY_CONFIG), path)


def test_int64_weights_given_to_inference_exit_2_and_write_nothing(tmp_path, capsys, network_yaml, image):
    weights = tmp_path / 'ints.safetensors'
    save_file(integer_state(), str(weights))
    status, err = run_inference(capsys, weights, network_yaml, image, tmp_path / 'out')
    assert status == 2 and 'holds torch.int64 values' in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()


def test_int64_weights_given_to_export_exit_2_before_exporting(tmp_path, capsys, network_yaml):
    weights = tmp_path / 'ints.pth'
    torch.save({'params': integer_state()}, weights)
    status = export_onnx.main(['--weights', str(weights), '--config', network_yaml, '-o', str(tmp_path / 'x.onnx')])
    assert status == 2 and 'holds torch.int64 values' in capsys.readouterr().err
    assert not (tmp_path / 'x.onnx').exists()


def test_int64_weights_given_to_convert_weights_exit_2_and_write_nothing(tmp_path, capsys):
    source = tmp_path / 'ints.pth'
    torch.save({'params_ema': integer_state()}, source)
    assert convert_weights.main([str(source), str(tmp_path / 'out.safetensors')]) == 2
    assert "tensor 'patch_embed.proj.weight' holds torch.int64" in capsys.readouterr().err
    assert not (tmp_path / 'out.safetensors').exists()


def test_int64_weights_given_as_pretrain_network_g_to_testing_are_refused(tmp_path):
    weights = tmp_path / 'ints.pth'
    torch.save({'params': integer_state()}, weights)
    opt = {'name': 'x', 'model_type': 'HINTModel', 'is_train': False, 'num_gpu': 0, 'dist': False, 'rank': 0,
           'world_size': 1, 'network_g': {'type': 'HINT', **TINY_CONFIG}, 'path': {'pretrain_network_g': str(weights)}}
    with pytest.raises(CheckpointError, match='ints.pth: tensor .* holds torch.int64 values'):
        build_model(opt)


# ---------------------------------------------------------------------------------------------- spandrel
@pytest.mark.parametrize('weights, words', [(integer_state, 'holds torch.int64 values where the HINT configuration'),
                                            (lambda: tiny_state(lambda n, v: v * float('nan')),
                                             'holds NaN or infinite values')], ids=['int64', 'nan'])
def test_spandrel_refuses_int64_and_nan_weights(tmp_path, weights, words):
    from spandrel import ModelLoader

    import hint_plugin.spandrel  # noqa: F401
    path = tmp_path / 'bad.safetensors'
    save_file(weights(), str(path))
    with pytest.raises(CheckpointError, match=words):
        ModelLoader().load_from_file(path)


def test_spandrel_refuses_huge_weights_whose_output_overflows(tmp_path):
    from spandrel import ModelLoader

    import hint_plugin.spandrel  # noqa: F401
    with pytest.raises(CheckpointError, match=r'16 x 16 probe image: the network\'s output holds \d+ non-finite '
                                             r'values .*refusing to load these weights'):
        ModelLoader().load_from_state_dict(huge_state())
    # sound weights load, and the probe changes nothing: the first call equals the plugin's network's
    state = tiny_state()
    model = ModelLoader().load_from_state_dict({'params': state})
    network = HINT(**TINY_CONFIG).eval()
    network.load_state_dict(state)
    image = torch.rand(1, 3, 24, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(image), network(image).clamp(0, 1), rtol=0, atol=0)


def test_spandrel_names_the_one_key_missing_from_a_hint_file(tmp_path):
    from spandrel import ModelLoader

    import hint_plugin.spandrel  # noqa: F401
    state = tiny_state()
    del state['latent.0.attn.qkv.weight']
    with pytest.raises(CheckpointError, match=r'does not fit the HINT configuration detected from its tensor shapes: 1 missing key '
                                             r'\(latent.0.attn.qkv.weight\)\.$'):
        ModelLoader().load_from_state_dict(state)
    del state['output.weight']  # a key the configuration is read from
    with pytest.raises(CheckpointError, match=r"cannot be loaded: not a HINT state dict: missing 'output.weight'"):
        ModelLoader().load_from_state_dict(state)


@pytest.mark.parametrize('name', ['empty.pth', 'empty.safetensors'])
def test_spandrel_load_from_file_names_an_empty_file(tmp_path, name):
    from hint_plugin.spandrel import load_from_file
    (tmp_path / name).write_bytes(b'')
    with pytest.raises(CheckpointError, match=rf'{name}: the file is empty \(0 bytes\)'):
        load_from_file(tmp_path / name)


# ---------------------------------------------------------------------------- huge weights, non-finite output
def test_huge_weights_stop_inference_naming_the_image_and_count_and_write_nothing(tmp_path, capsys, network_yaml,
                                                                                    image):
    weights = tmp_path / 'huge.pth'
    torch.save({'params_ema': huge_state()}, weights)
    status, err = run_inference(capsys, weights, network_yaml, image, tmp_path / 'out')
    assert status == 1 and 'Traceback' not in err
    assert f"error: {image}: the network's output holds 768 non-finite values (NaN or infinity) of 768" in err
    assert list((tmp_path / 'out').iterdir()) == []


def test_huge_weights_given_to_export_exit_2_before_exporting(tmp_path, capsys, network_yaml):
    weights = tmp_path / 'huge.pth'
    torch.save({'params': huge_state()}, weights)
    status = export_onnx.main(['--weights', str(weights), '--config', network_yaml, '-o', str(tmp_path / 'x.onnx')])
    err = capsys.readouterr().err
    assert status == 2 and 'Traceback' not in err
    assert f"error: {weights}: a 16 x 16 probe image: the network's output holds 768 non-finite values" in err
    assert not (tmp_path / 'x.onnx').exists()


def test_huge_weights_given_to_convert_weights_exit_2_and_write_nothing(tmp_path, capsys):
    source = tmp_path / 'huge.pth'
    torch.save({'params_ema': huge_state()}, source)
    assert convert_weights.main([str(source), str(tmp_path / 'out.safetensors')]) == 2
    err = capsys.readouterr().err
    assert f"error: {source}: a 16 x 16 probe image: the network's output holds" in err and 'not converted' in err
    assert not (tmp_path / 'out.safetensors').exists()


def test_convert_weights_into_a_missing_folder_exits_1_naming_the_target(tmp_path, capsys):
    source = tmp_path / 'net.pth'
    torch.save({'params_ema': tiny_state()}, source)
    target = tmp_path / 'no_such_folder' / 'net.safetensors'
    assert convert_weights.main([str(source), str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: cannot save {target}: No such file or directory') and 'Traceback' not in err


def test_huge_weights_stop_validation_naming_the_image_before_scoring_or_saving(tmp_path):
    weights = tmp_path / 'huge.pth'
    torch.save({'params': huge_state()}, weights)
    visualization = tmp_path / 'visualization'
    opt = {'name': 'x', 'model_type': 'HINTModel', 'is_train': False, 'num_gpu': 0, 'dist': False, 'rank': 0,
           'world_size': 1, 'scale': 1, 'network_g': {'type': 'HINT', **TINY_CONFIG},
           'path': {'pretrain_network_g': str(weights), 'visualization': str(visualization)},
           'val': {'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}}
    model = build_model(opt)

    class OnePair(torch.utils.data.Dataset):
        opt = {'name': 'set'}

        def __len__(self):
            return 1

        def __getitem__(self, index):
            image = torch.rand(3, 16, 16)
            return {'lq': image, 'gt': image, 'lq_path': 'set/lq/img7.png', 'gt_path': 'set/gt/img7.png'}

    loader = torch.utils.data.DataLoader(OnePair(), batch_size=1)
    with pytest.raises(NonFiniteError, match=r"set/lq/img7.png: the network's output holds 768 non-finite values"):
        model.validation(loader, current_iter=1, tb_logger=None, save_img=True)
    assert not visualization.exists()


# ------------------------------------------------------------------------------------- misleading messages
def test_weights_whose_shapes_fit_no_hint_are_not_told_to_set_the_failed_configuration(tmp_path):
    state = tiny_state()
    state['latent.0.attn.qkv.weight'] = torch.zeros(5, 5, 1, 1)  # no HINT has this shape; detection still reads it
    path = tmp_path / 'odd.pth'
    torch.save({'params': state}, path)
    with pytest.raises(CheckpointError) as raised:
        load_weights(HINT(**TINY_CONFIG), path)
    message = str(raised.value)
    assert 'set network_g' not in message
    assert 'These weights fit no HINT configuration' in message and 'latent.0.attn.qkv.weight' in message


def test_weights_of_another_hint_configuration_are_told_which_one(tmp_path):
    path = tmp_path / 'wide.pth'
    torch.save({'params': HINT(**{**TINY_CONFIG, 'dim': 16}).state_dict()}, path)
    with pytest.raises(CheckpointError, match=r'These weights are a HINT with .*dim: 16.*set network_g'):
        load_weights(HINT(**TINY_CONFIG), path)


def test_negative_atol_is_refused_when_parsing(capsys):
    with pytest.raises(SystemExit) as exited:
        export_onnx.build_parser().parse_args(['--weights', 'w.pth', '-o', 'x.onnx', '--atol', '-1'])
    assert exited.value.code == 2 and '--atol: must be a number >= 0, got -1' in capsys.readouterr().err


@pytest.mark.parametrize('suffix', ['/../../escaped', '..', 'a/b', '_ok/..'])
def test_suffix_that_leaves_the_output_folder_is_refused_naming_suffix(tmp_path, capsys, suffix):
    with pytest.raises(SystemExit) as exited:
        inference.main(['--weights', 'w.pth', '-i', 'in.png', '-o', str(tmp_path / 'out'), f'--suffix={suffix}'])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and 'argument --suffix' in err and 'outside the output folder' in err


def test_plain_suffix_is_accepted():
    assert inference.build_parser().parse_args(['-i', 'a', '-o', 'b', '--suffix', '_x.v2']).suffix == '_x.v2'


def test_tile_below_the_smallest_is_refused_saying_the_rule(tmp_path, capsys, network_yaml, image):
    status, err = run_inference(capsys, tmp_path / 'missing.pth', network_yaml, image, tmp_path / 'out',
                                '--tile', '3')
    assert status == 2 and 'tile 3 is too small for an overlap of 32: tiles must be at least 40' in err
    assert not (tmp_path / 'out').exists()


def test_smallest_tile_is_the_overlap_rounded_up_plus_one_window(network_yaml):
    assert [smallest_tile(overlap, 8) for overlap in (0, 1, 8, 30, 32)] == [8, 16, 16, 40, 40]
    assert resolve_setup(weights='w.pth', config=network_yaml, tile=40).tile == 40  # the default overlap, 32
    assert resolve_setup(weights='w.pth', config=network_yaml, tile=16, overlap=8).tile == 16
    with pytest.raises(OptionsError, match='tile 39 is too small for an overlap of 32: tiles must be at least 40'):
        resolve_setup(weights='w.pth', config=network_yaml, tile=39)


def png_declaring(width, height):
    """A few hundred bytes of PNG whose header declares ``width`` x ``height`` pixels."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def test_image_declaring_more_pixels_than_max_pixels_is_refused_before_decoding(tmp_path, capsys, network_yaml):
    bomb = tmp_path / 'bomb.png'
    bomb.write_bytes(png_declaring(100_000, 100_000))
    weights = tmp_path / 'net.pth'
    torch.save({'params_ema': tiny_state()}, weights)
    status, err = run_inference(capsys, weights, network_yaml, bomb, tmp_path / 'out', '--max-pixels', '1000000')
    assert status == 1 and 'Traceback' not in err
    assert (f'{bomb} (declares 100000 x 100000 = 10000000000 pixels, above the limit of 1000000 (--max-pixels); '
            'refused before decoding)') in err


def test_max_pixels_above_opencvs_own_limit_is_refused(capsys, monkeypatch):
    monkeypatch.setenv('OPENCV_IO_MAX_IMAGE_PIXELS', '1000')
    with pytest.raises(SystemExit) as exited:
        inference.main(['--weights', 'w.pth', '-i', 'in.png', '-o', 'out', '--max-pixels', '2000'])
    assert exited.value.code == 2 and 'raise that environment variable too' in capsys.readouterr().err


def test_explicit_param_key_that_is_absent_is_refused_naming_the_keys_present(tmp_path, capsys, network_yaml,
                                                                              image):
    weights = tmp_path / 'net.pth'
    torch.save({'params': tiny_state(), 'params_ema': tiny_state()}, weights)
    status, err = run_inference(capsys, weights, network_yaml, image, tmp_path / 'out', '--param-key', 'param')
    assert status == 2
    assert "no weights under the key 'param' asked for (the keys holding weights are ['params', 'params_ema'])" in err
    assert not (tmp_path / 'out').exists()


def test_explicit_param_key_on_a_bare_state_dict_says_to_leave_it_out(tmp_path):
    path = tmp_path / 'bare.pth'
    torch.save(tiny_state(), path)
    with pytest.raises(CheckpointError, match='bare state_dict with no such key'):
        read_state_dict(path, 'params', exact_key=True)
    assert read_state_dict(path, 'params').keys() == tiny_state().keys()  # without asking, the fallback stays


def test_explicit_param_key_that_is_absent_is_refused_by_convert_weights(tmp_path, capsys):
    source = tmp_path / 'net.pth'
    torch.save({'params': tiny_state()}, source)
    assert convert_weights.main([str(source), str(tmp_path / 'x.safetensors'), '--param-key', 'params_ema']) == 2
    assert "the keys holding weights are ['params']" in capsys.readouterr().err


def test_load_network_with_an_exact_key_that_exists_loads(tmp_path):
    path = tmp_path / 'net.pth'
    torch.save({'params': tiny_state()}, path)
    net = load_network({'type': 'HINT', **TINY_CONFIG}, path, 'params', exact_key=True)
    assert torch.equal(net.state_dict()['output.weight'], tiny_state()['output.weight'])


def test_explicit_param_key_that_is_absent_is_refused_by_precision_table(tmp_path, network_yaml):
    from studies import precision_table
    weights = tmp_path / 'net.pth'
    torch.save({'params': tiny_state()}, weights)
    with pytest.raises(CheckpointError, match=r"no weights under the key 'params_ema' asked for \(the keys holding "
                                              r"weights are \['params'\]\)"):
        precision_table.main(['--weights', str(weights), '--config', network_yaml, '--param-key', 'params_ema'])
