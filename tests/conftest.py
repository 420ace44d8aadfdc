import pytest
import torch

import hint_plugin  # noqa: F401  (registers HINT and friends)
from tests.helpers import FIXTURES, REPO, TINY_CONFIG, make_paired_lmdbs  # noqa: F401  (shared helpers: tests/helpers.py)

torch.set_num_threads(1)  # tiny networks: threads only add overhead


# Module fixtures that cost seconds (the quick demo run, the uninterrupted torchrun).
SHARED_COSTLY_FIXTURES = ('quick_demo', 'uninterrupted_weights')


def pytest_collection_modifyitems(items):
    """The slow tests first (stable otherwise): under ``pytest -n`` the workers start on the longest ones and the
    short ones fill in behind, instead of one worker finishing a long test alone at the end.

    Before them, the tests that share a costly module fixture, module by module: a worker that gets one of them
    runs its module's fixture, and another worker that got one too would run it again. At the head of the queue
    they stay together: work stealing takes tests from the end of a worker's queue."""
    def order(item):
        shared = any(name in item.fixturenames for name in SHARED_COSTLY_FIXTURES)
        return not shared, item.get_closest_marker('slow') is None

    items.sort(key=order)


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
