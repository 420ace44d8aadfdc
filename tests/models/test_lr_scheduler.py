"""CosineAnnealingRestartCyclicLR: values at the boundaries and beyond, resume, errors."""
import math

import pytest
import torch

from hint_plugin.models.lr_scheduler import CosineAnnealingRestartCyclicLR


def lr_curve(iterations, base_lr=1.0, **kwargs):
    """Learning rates at iterations ``0 .. iterations`` (the scheduler steps once per iteration)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, **kwargs)
    lrs = [optimizer.param_groups[0]['lr']]
    for _ in range(iterations):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]['lr'])
    return lrs


def expected_lr(iteration, base_lr, periods, weights, eta_mins):
    end = 0
    for period, weight, eta_min in zip(periods, weights, eta_mins):
        start, end = end, end + period
        if iteration <= end:
            return eta_min + weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * (iteration - start) / period))
    return eta_mins[-1]


def test_schedule_follows_the_formula_at_boundaries_and_beyond():
    periods, weights, eta_mins = [10, 20, 5], [1, 0.5, 0.8], [0.1, 0.0, 0.05]
    lrs = lr_curve(45, 2.0, periods=periods, restart_weights=weights, eta_mins=eta_mins)
    for iteration, lr in enumerate(lrs):
        assert math.isclose(lr, expected_lr(iteration, 2.0, periods, weights, eta_mins), abs_tol=1e-12), iteration
    assert lrs[0] == 2.0
    assert math.isclose(lrs[5], 0.1 + 0.5 * 1.9, abs_tol=1e-12)  # half-way through period 0
    assert math.isclose(lrs[10], 0.1, abs_tol=1e-12)  # end of period 0
    assert math.isclose(lrs[30], 0.0, abs_tol=1e-12)  # end of period 1
    assert math.isclose(lrs[20], 0.5 * 0.5 * 2.0, abs_tol=1e-12)  # half-way through period 1, weight 0.5
    assert all(math.isclose(lr, 0.05, abs_tol=1e-12) for lr in lrs[35:])  # held after the last period


def test_hint_recipe_is_constant_then_anneals():
    recipe = dict(periods=[92000, 208000], restart_weights=[1, 1], eta_mins=[3e-4, 1e-6])
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=3e-4)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, **recipe)
    checks = {0: 3e-4, 50000: 3e-4, 92000: 3e-4, 92001: 1e-6 + 0.5 * (3e-4 - 1e-6) * (1 + math.cos(math.pi / 208000)),
              196000: 1e-6 + 0.5 * (3e-4 - 1e-6), 300000: 1e-6, 400000: 1e-6}
    for iteration, lr in checks.items():
        scheduler.last_epoch = iteration  # evaluate the closed form at this iteration
        assert math.isclose(scheduler.get_lr()[0], lr, rel_tol=1e-12), iteration


def test_schedule_resumes_from_state_dict():
    kwargs = dict(periods=[4, 6], restart_weights=[1, 1], eta_mins=[0.5, 0.0])
    full = lr_curve(10, **kwargs)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, **kwargs)
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    resumed = CosineAnnealingRestartCyclicLR(optimizer, **kwargs)
    resumed.load_state_dict(scheduler.state_dict())
    lrs = []
    for _ in range(4):
        optimizer.step()
        resumed.step()
        lrs.append(optimizer.param_groups[0]['lr'])
    assert lrs == pytest.approx(full[7:], abs=1e-12)


@pytest.mark.parametrize('kwargs', [
    dict(periods=[10, 10], restart_weights=[1], eta_mins=[0, 0]),
    dict(periods=[10, 10], restart_weights=[1, 1], eta_mins=[0]),
    dict(periods=[], restart_weights=[], eta_mins=[]),
])
def test_schedule_rejects_mismatched_lists(kwargs):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match='same length'):
        CosineAnnealingRestartCyclicLR(optimizer, **kwargs)


def test_schedule_rejects_non_positive_periods():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match='positive integers'):
        CosineAnnealingRestartCyclicLR(optimizer, periods=[10, 0], restart_weights=[1, 1], eta_mins=[0, 0])
