"""hint_plugin.utils.allocator: freed large blocks are reused (no fresh page faults), and the switch turns it off."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

# Allocates and frees a 64 MB tensor six times; prints the minor page faults of the last five per allocation.
PROBE = """
import resource, sys, torch
sys.path.insert(0, sys.argv[1])
from hint_plugin.utils.allocator import retain_freed_memory
print(retain_freed_memory())
for i in range(6):
    if i == 1:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(64 * 2**20 // 4)
    del block
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 5)
"""
PAGES_IN_64_MB = 64 * 2**20 // os.sysconf('SC_PAGE_SIZE')


def probe(switch):
    env = dict(os.environ, HINT_RETAIN_FREED_MEMORY=switch)
    out = subprocess.run([sys.executable, '-c', PROBE, str(REPO)], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    return out[0] == 'True', float(out[1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc allocator setting (Linux only)')
def test_retained_memory_is_reused_without_page_faults():
    applied, faults = probe('1')
    assert applied
    assert faults < 0.3 * PAGES_IN_64_MB  # at most the first reuse grows the heap


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc allocator setting (Linux only)')
def test_switch_off_keeps_glibc_defaults():
    applied, faults = probe('0')
    assert not applied
    assert faults > 0.9 * PAGES_IN_64_MB  # each 64 MB block is a fresh mapping, faulted in page by page
