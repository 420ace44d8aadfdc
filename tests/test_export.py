"""hint_plugin.export and tools/export_onnx.py: ONNX with dynamic height and width that matches PyTorch.

The [export] extra (onnx, onnxruntime, onnxscript) is pinned in requirements/lock.txt: without it these tests fail
with a message saying what to install; they do not skip.
"""
import importlib
import os
import runpy
import sys

import pytest
import torch
import yaml
from conftest import REPO, TINY_CONFIG
from tests.helpers import TRACE_CONFIG
from torch.nn import functional as F

from hint_plugin import export
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.errors import ExportError
from hint_plugin.cli import export_onnx as command

# neither side a multiple of 8 (HINT pads internally); 17x3 takes HINT's replicate padding (pad >= width)
CHECK_SIZES = ((37, 45), (66, 83), (17, 3))


@pytest.fixture(scope='module', autouse=True)
def export_packages():
    missing = []
    for name in ('onnx', 'onnxruntime', 'onnxscript'):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pytest.fail(f'the ONNX export tests need {", ".join(missing)}: `make install` (requirements/lock.txt pins '
                    "them) or pip install -e '.[export]'", pytrace=False)


def tiny_hint(variant, seed=0):
    """A tiny HINT with each kind of block that an export traces once (TRACE_CONFIG)."""
    torch.manual_seed(seed)
    return HINT(**TRACE_CONFIG, variant=variant).eval().requires_grad_(False)


def forward(net, image):
    with torch.no_grad():
        return net(image)


# --------------------------------------------------------------------------------------------- pieces, in-process
@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_padding_wrapper_is_the_network(variant):
    """PaddedHINT pads as HINT does (reflect, or replicate for pads >= the size), so outputs are bit-identical."""
    net = tiny_hint(variant)
    wrapped = export.PaddedHINT(net)
    generator = torch.Generator().manual_seed(1)
    for height, width in [(1, 1), (3, 17), (4, 12), (5, 5), (8, 8), (9, 16), (12, 4), (13, 21), (24, 40)]:
        image = torch.rand(2, 3, height, width, generator=generator)
        expected, found = forward(net, image), forward(wrapped, image)
        assert found.shape == expected.shape == image.shape
        assert torch.equal(found, expected), (height, width)


def test_exportable_ops_are_the_torch_ones():
    generator = torch.Generator().manual_seed(0)
    cache = torch.rand(2, 64, 64, generator=generator)
    for size in (8, 16, 24, 32, 48, 64, 5):  # HINT pools a (C, C) cache to head sizes in ratio 1:2:2:3
        torch.testing.assert_close(export.adaptive_avg_pool2d(cache, size), F.adaptive_avg_pool2d(cache, size))
    original = F.adaptive_avg_pool2d
    with export.exportable_ops('torchscript'):
        assert F.adaptive_avg_pool2d is export.adaptive_avg_pool2d
    assert F.adaptive_avg_pool2d is original
    with pytest.raises(RuntimeError), export.exportable_ops('dynamo'):
        assert F.adaptive_avg_pool2d is original
        raise RuntimeError
    assert F.adaptive_avg_pool2d is original


def test_missing_package_and_bad_arguments_are_clear(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import onnxruntime now raises ImportError
    with pytest.raises(ExportError, match=r"onnxruntime .*pip install -e '\.\[export\]'"):
        export.require('onnxruntime')
    net = tiny_hint('official')
    path = str(tmp_path / 'x.onnx')
    with pytest.raises(ExportError, match='opsets'):
        export.export_onnx(net, path, opset=7)
    with pytest.raises(ExportError, match='exporter must be'):
        export.export_onnx(net, path, exporter='tflite')
    with pytest.raises(ExportError, match='example_size'):
        export.export_onnx(net, path, example_size=(0, 8))
    with pytest.raises(ExportError, match='batch'):
        export.export_onnx(net, path, batch=0)
    assert not os.path.exists(path)


# --------------------------------------------------------------------------------------------- export + onnxruntime
@pytest.mark.slow
@pytest.mark.parametrize('variant', ['official', 'refined'])
def test_onnx_matches_pytorch_on_sizes_that_are_not_multiples_of_8(variant, tmp_path):
    import onnx

    net = tiny_hint(variant)
    path = export.export_onnx(net, str(tmp_path / f'hint_{variant}.onnx'))
    model = onnx.load(path)
    assert model.opset_import[0].version == export.DEFAULT_OPSET
    (model_input, ), (model_output, ) = model.graph.input, model.graph.output
    for value in (model_input, model_output):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_value for d in dims[:2]] == [1, 3]  # batch fixed at 1
        assert [d.dim_param for d in dims[2:]] == ['height', 'width'], f'height, width not dynamic: {dims}'
    results = export.check_onnx(path, net, CHECK_SIZES)
    assert [size for size, _ in results] == list(CHECK_SIZES)
    assert all(difference <= 1e-4 for _, difference in results), results
    assert not net.training


# --------------------------------------------------------------------------------------------- command line
@pytest.mark.slow
def test_command_line_exports_and_checks(tmp_path, monkeypatch, capsys):
    """The CLI end to end, with the legacy TorchScript exporter (the in-process tests above use the default).

    tools/export_onnx.py runs as ``__main__`` in this process (runpy, as ``python tools/export_onnx.py`` runs it: its
    argv, its exit status); a fresh interpreter would add only the start-up of torch and BasicSR."""
    net = tiny_hint('official')
    weights = tmp_path / 'tiny.pth'
    torch.save({'params': net.state_dict()}, weights)
    config = tmp_path / 'tiny.yml'
    config.write_text(yaml.safe_dump({'network_g': {'type': 'HINT', **TRACE_CONFIG}}))
    output = tmp_path / 'onnx' / 'tiny.onnx'
    script = str(REPO / 'tools' / 'export_onnx.py')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', [
        script, '--weights', str(weights), '--config', str(config), '--output', str(output), '--exporter',
        'torchscript', '--opset', '17', '--check', '37', '45', '--check', '21', '30'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name='__main__')
    out, err = capsys.readouterr()
    assert exit_info.value.code == command.EXIT_OK, err[-3000:]
    assert 'opset 17, torchscript exporter, input (1, 3, height, width)' in out, out
    assert 'onnxruntime matches PyTorch: 37x45' in out and '21x30' in out, out

    # the file is the checkpoint's network: it matches it, and a differently initialised one is reported
    export.check_onnx(str(output), net, [(20, 13)])
    with pytest.raises(ExportError, match=r'20x13: max \|difference\| .* > 0\.0001.*official variant'):
        export.check_onnx(str(output), tiny_hint('official', seed=1), [(20, 13)])


def test_command_line_setup_errors_exit_2(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / 'tiny.pth'
    torch.save({'params': HINT(**TINY_CONFIG).state_dict()}, weights)
    output = tmp_path / 'x.onnx'
    # a tiny checkpoint for a wider HINT: refused before anything is exported
    wide = tmp_path / 'wide.yml'
    wide.write_text(yaml.safe_dump({'network_g': {'type': 'HINT', **TINY_CONFIG, 'dim': 16}}))
    assert command.main(['--weights', str(weights), '--config', str(wide), '--output', str(output)]) == \
        command.EXIT_SETUP
    error = capsys.readouterr().err
    assert error.startswith('error: ') and 'does not fit HINT' in error, error
    # weights of another network without --config: it cannot be detected, so it is asked for
    other = tmp_path / 'conv.pth'
    torch.save({'params': torch.nn.Conv2d(3, 3, 3).state_dict()}, other)
    assert command.main(['--weights', str(other), '--output', str(output)]) == command.EXIT_SETUP
    assert 'give --config' in capsys.readouterr().err
    config = tmp_path / 'tiny.yml'
    config.write_text(yaml.safe_dump({'network_g': {'type': 'HINT', **TINY_CONFIG}}))
    assert command.main(['--weights', str(weights), '--config', str(config), '--output', str(output),
                        '--opset', '99']) == command.EXIT_SETUP
    assert 'supports opsets' in capsys.readouterr().err
    assert not output.exists()
