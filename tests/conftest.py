from pathlib import Path

import pytest
import torch

import hint_plugin  # noqa: F401  (registers HINT and friends)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / 'tests' / 'fixtures'  # copies of the shared reference material (see its README)

torch.set_num_threads(1)  # tiny networks: threads only add overhead

# A width-8 HINT: every level and both caches exist, and it runs in milliseconds.
TINY_CONFIG = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])


@pytest.fixture
def tiny_config():
    return dict(TINY_CONFIG)


@pytest.fixture(scope='session')
def reference_fixture():
    return torch.load(FIXTURES / 'hint_reference_small.pt', weights_only=True)


@pytest.fixture(scope='session')
def reference_sequence():
    return torch.load(FIXTURES / 'hint_reference_sequence_small.pt', weights_only=True)
