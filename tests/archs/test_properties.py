"""Property-based checks of HINT (hypothesis): any size 1..70, batch 1..3, both variants.

The output has the input's shape and dtype, is finite, and is not the input passed through (the network adds
its restoration to the input). Constant images (all zeros, all ones) give zero-variance channels, whose
correlations in HMHA's channel ordering are NaN: the output must stay finite all the same. With the
``refined`` variant (per-image statistics) each image of a batch comes out as it would alone.

Each example runs a tiny HINT once (tens of milliseconds); the example counts keep the file under ~30 s on one
CPU thread.
"""

import pytest
import torch
from conftest import TINY_CONFIG
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hint_plugin.archs.hint_arch import HINT

VARIANTS = ('official', 'refined')
sizes = st.integers(1, 70)
batches = st.integers(1, 3)
variants = st.sampled_from(VARIANTS)
seeds = st.integers(0, 2**32 - 1)
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope='module')
def networks():
    """The two tiny networks, random weights, eval mode, no gradients; built once."""
    torch.set_num_threads(1)
    nets = {}
    for variant in VARIANTS:
        torch.manual_seed(0)
        nets[variant] = HINT(**TINY_CONFIG, variant=variant).eval().requires_grad_(False)
    return nets


def run(net, image):
    with torch.no_grad():
        return net(image)


def random_image(batch, height, width, seed):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=150, **SETTINGS)
@given(height=sizes, width=sizes, batch=batches, variant=variants, seed=seeds)
@example(height=1, width=1, batch=3, variant='official', seed=0)
@example(height=8, width=8, batch=2, variant='refined', seed=0)
@example(height=70, width=70, batch=3, variant='refined', seed=0)
def test_any_size_and_batch_gives_a_finite_restoration_of_the_same_shape(networks, height, width, batch, variant,
                                                                          seed):
    image = random_image(batch, height, width, seed)
    out = run(networks[variant], image)
    assert out.shape == (batch, 3, height, width)
    assert out.dtype == image.dtype == torch.float32
    assert out.is_contiguous()
    assert torch.isfinite(out).all(), f'non-finite output for {batch}x3x{height}x{width} ({variant})'
    assert (out - image).abs().max() > 1e-4, 'the output is the input passed through'


@settings(max_examples=80, **SETTINGS)
@given(height=sizes, width=sizes, batch=batches, variant=variants, value=st.sampled_from([0.0, 1.0]))
@example(height=70, width=70, batch=3, variant='official', value=1.0)
@example(height=70, width=70, batch=3, variant='refined', value=0.0)
def test_constant_images_give_finite_output(networks, height, width, batch, variant, value):
    image = torch.full((batch, 3, height, width), value)
    out = run(networks[variant], image)
    assert out.shape == (batch, 3, height, width)
    assert torch.isfinite(out).all(), f'non-finite output for a constant {value} image {height}x{width} ({variant})'


@settings(max_examples=25, **SETTINGS)
@given(height=sizes, width=sizes, batch=st.integers(2, 3), seed=seeds)
def test_refined_variant_restores_each_image_of_a_batch_as_alone(networks, height, width, batch, seed):
    image = random_image(batch, height, width, seed)
    net = networks['refined']
    together = run(net, image)
    for i in range(batch):
        alone = run(net, image[i:i + 1])
        torch.testing.assert_close(together[i:i + 1], alone, rtol=1e-4, atol=1e-5)
