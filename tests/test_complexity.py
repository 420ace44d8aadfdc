"""tools/complexity.py: mmengine's counts checked against an independent count from forward hooks."""
import sys

import pytest
import torch
from torch import nn

from conftest import TINY_CONFIG
from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import HMHA
from hint_plugin.archs.layers import GatedDconvFeedForward
from hint_plugin.cli import complexity as command
from hint_plugin.complexity import analyze


def hooked_counts(net, height, width):
    """Conv2d MACs, and per attention block the channel correlation's two matrix-vector products (2 * C * N) and
    the attention products (q k^T and A v: 2 * c * c * N per head of c channels), counted by hooks."""
    counts = {'conv2d': 0, 'correlation': 0, 'attention': 0}

    def conv_hook(module, inputs, output):
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        counts['conv2d'] += output.numel() * kernel

    def attention_hook(module, inputs, output):  # qkv and the depthwise run functionally (project_out: a module)
        _, channels, h, w = inputs[0].shape
        counts['conv2d'] += h * w * module.qkv.out_channels * channels
        counts['conv2d'] += h * w * module.qkv_dwconv.out_channels * 9
        counts['correlation'] += 2 * channels * h * w
        counts['attention'] += sum(2 * c * c * h * w for c in module.head_channels)

    def ffn_hook(module, inputs, output):  # its convolutions run functionally (the first two as two halves each)
        _, channels, h, w = inputs[0].shape
        counts['conv2d'] += h * w * module.project_in.out_channels * (channels + 9)
        counts['conv2d'] += h * w * module.project_out.in_channels * channels

    for module in net.modules():
        if isinstance(module, GatedDconvFeedForward):
            module.register_forward_hook(ffn_hook)
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(conv_hook)
        if isinstance(module, HMHA):
            module.register_forward_hook(attention_hook)
    with torch.no_grad():
        net(torch.rand(1, 3, height, width))
    return counts


def test_complexity_counts_match_an_independent_count():
    net = HINT(**TINY_CONFIG)
    result = analyze(net, 32, 48)
    expected = hooked_counts(HINT(**TINY_CONFIG), 32, 48)
    assert result['params'] == sum(p.numel() for p in net.parameters())
    assert result['macs_conv2d'] == expected['conv2d']
    # matrix products: the correlations and the attention products, and the Conv1d cache layers' channel mixing
    assert result['macs_by_operator']['matmul'] > expected['correlation'] + expected['attention']
    assert result['macs_total'] > result['macs_conv2d'] + expected['correlation'] + expected['attention']


def test_complexity_cli_prints_table_and_totals(tmp_path, capsys):
    config = tmp_path / 'net.yml'
    config.write_text('network_g: {type: HINT, dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}\n')
    command.main(['--opt', str(config), '--size', '32', '48', '--variant', 'refined'])
    out = capsys.readouterr().out
    assert 'parameters:' in out and 'MACs, 2-D convolutions only' in out
    assert 'refinement' in out  # the per-module table


def test_complexity_without_mmengine_names_the_extra(monkeypatch, capsys):
    """mmengine is the [complexity] extra: without it the command exits 2 saying what to install."""
    monkeypatch.setitem(sys.modules, 'mmengine.analysis', None)  # importing it now raises ImportError
    monkeypatch.delitem(sys.modules, 'hint_plugin.complexity')
    with pytest.raises(SystemExit) as exit_info:
        command.main(['--size', '16', '16'])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert 'complexity counts need mmengine' in error and "pip install -e '.[complexity]'" in error, error
