import pytest
import torch

import hint_plugin  # noqa: F401  (registers HINT and friends)
from tests.helpers import FIXTURES, REPO, TINY_CONFIG, make_paired_lmdbs  # noqa: F401  (shared helpers: tests/helpers.py)

torch.set_num_threads(1)  # tiny networks: threads only add overhead


def pytest_collection_modifyitems(items):
    """The slow tests first (stable otherwise): under ``pytest -n`` the workers start on the longest ones and the
    short ones fill in behind, instead of one worker finishing a long test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)


@pytest.fixture
def tiny_config():
    return dict(TINY_CONFIG)


@pytest.fixture(scope='session')
def reference_fixture():
    return torch.load(FIXTURES / 'hint_reference_small.pt', weights_only=True)


@pytest.fixture(scope='session')
def reference_sequence():
    return torch.load(FIXTURES / 'hint_reference_sequence_small.pt', weights_only=True)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """Paired LMDBs for a tiny training: 6 train pairs of 32 px and 2 validation pairs of 24 px."""
    root = tmp_path_factory.mktemp('data')
    return {'train': make_paired_lmdbs(root, 'train', 6, 32, 0), 'val': make_paired_lmdbs(root, 'val', 2, 24, 1)}
