import pytest
import torch

import hint_plugin  # noqa: F401  (registers HINT and friends)
from tests.helpers import FIXTURES, REPO, TINY_CONFIG  # noqa: F401  (shared helpers live in tests/helpers.py)

torch.set_num_threads(1)  # tiny networks: threads only add overhead


@pytest.fixture
def tiny_config():
    return dict(TINY_CONFIG)


@pytest.fixture(scope='session')
def reference_fixture():
    return torch.load(FIXTURES / 'hint_reference_small.pt', weights_only=True)


@pytest.fixture(scope='session')
def reference_sequence():
    return torch.load(FIXTURES / 'hint_reference_sequence_small.pt', weights_only=True)
