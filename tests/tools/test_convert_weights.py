"""tools/convert_weights.py: .pth -> .safetensors with the network_g in the metadata; refusals exit 2."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.cli import convert_weights
from hint_plugin.utils.safetensors_io import read_network_config

REPO = Path(__file__).resolve().parents[2]


def run(*args):
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_weights.py'), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_converts_with_detected_config_and_with_an_option_file(tmp_path, tiny_config):
    source = tmp_path / 'net.pth'
    torch.save({'params_ema': HINT(**tiny_config).state_dict()}, source)
    result = run(source, tmp_path / 'net.safetensors')
    assert result.returncode == 0, result.stderr
    assert read_network_config(tmp_path / 'net.safetensors')['num_blocks'] == [1, 1, 1, 8]

    config = tmp_path / 'net.yml'
    config.write_text('network_g:\n  type: HINT\n  dim: 8\n  num_blocks: [1, 1, 1, 1]\n  num_refinement_blocks: 1\n')
    # the same command line through main() in this process (the run above covers the script's own start)
    assert convert_weights.main([str(source), str(tmp_path / 'named.safetensors'), '--config', str(config)]) == 0
    assert read_network_config(tmp_path / 'named.safetensors')['num_blocks'] == [1, 1, 1, 1]


def test_refusals_exit_2_with_one_line(tmp_path, capsys):
    source = tmp_path / 'other.pth'
    torch.save({'conv.weight': torch.zeros(4, 3, 3, 3)}, source)
    # main() in this process (test_converts_with_detected_config_and_with_an_option_file runs the script itself)
    assert convert_weights.main([str(source), str(tmp_path / 'other.safetensors')]) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: ') and 'patch_embed' in error, error
    with pytest.raises(SystemExit) as exit_info:  # argparse's refusal, through main() in this process
        convert_weights.main([str(source), str(tmp_path / 'other.pth2')])
    assert exit_info.value.code == 2 and 'must end in .safetensors' in capsys.readouterr().err
    assert not (tmp_path / 'other.pth2').exists()
