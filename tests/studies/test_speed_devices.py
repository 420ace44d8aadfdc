"""studies/speed_devices.py: every device is timed against each alternative it names, in milliseconds."""
import re

import torch

from studies import speed_devices


def test_speed_devices_times_each_device_and_its_alternatives(capsys, monkeypatch):
    monkeypatch.setattr(speed_devices, 'retain_freed_memory', lambda: None)  # the test process keeps glibc's
    threads = torch.get_num_threads()
    try:
        speed_devices.main(['--repeat', '1', '--warmup', '0', '--threads', '1'])  # one call each
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith('1 threads')
    expected = {'channel_mix': ['device', 'linear', 'conv1d'], 'mean channel correlation': ['device', 'matrix'],
                'channel re-ordering': ['gather', 'index_select', 'indexing'],
                'AdamW step': ['fused', 'loop', 'foreach'], 'recomputation': ['recompute', 'plain']}
    for title, names in expected.items():
        found = [line for line in lines if line.startswith(title)]
        assert found, title
        for line in found:
            assert re.findall(r'(\w+) [0-9.]+ ms', line.split(': ', 1)[1]) == names, line
    assert len([line for line in lines if line.startswith('recomputation')]) == len(speed_devices.LEVELS)
    kept = [re.findall(r'([0-9.]+) MB', line) for line in lines if line.startswith('  kept')]
    assert len(kept) == len(speed_devices.LEVELS)
    assert all(float(recomputing) < float(plain) for recomputing, plain in kept)  # what recomputing is for


def test_each_timing_makes_its_untimed_calls_then_its_timed_ones():
    calls = []
    speed_devices.median_ms(lambda: calls.append(1), repeat=2, warmup=0)
    assert len(calls) == 2
    speed_devices.median_ms(lambda: calls.append(1), repeat=2)  # three untimed calls by default (--warmup 3)
    assert len(calls) == 2 + 5
