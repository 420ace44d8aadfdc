"""Learning-rate schedules of the HINT recipes that BasicSR 1.4.2 lacks."""
import math
from itertools import accumulate

from basicsr.models.lr_scheduler import get_position_from_periods
from torch.optim.lr_scheduler import LRScheduler


class CosineAnnealingRestartCyclicLR(LRScheduler):
    """Cosine annealing in consecutive periods, each with its own restart weight and minimum lr.

    In period ``i`` (iterations ``(start_i, start_i + periods[i]]``, ``start_i = sum(periods[:i])``; the first
    period also holds iteration 0)::

        lr = eta_mins[i] + restart_weights[i] * 0.5 * (base_lr - eta_mins[i])
             * (1 + cos(pi * (iter - start_i) / periods[i]))

    Past the last period the lr stays at the last period's end value, ``eta_mins[-1]``.

    Example (HINT, Restormer): ``periods=[92000, 208000]``, ``restart_weights=[1, 1]``,
    ``eta_mins=[3e-4, 1e-6]`` with a base lr of 3e-4 keeps 3e-4 for 92k iterations, then anneals to 1e-6.

    Args:
        optimizer (torch.optim.Optimizer): the optimizer.
        periods (list[int]): length of each cosine period, in iterations.
        restart_weights (list[float]): weight of each period's cosine. Default: (1, ).
        eta_mins (list[float]): minimum lr of each period. Default: (0, ).
        last_epoch (int): index of the last iteration (-1 to start). Default: -1.
    """

    def __init__(self, optimizer, periods, restart_weights=(1, ), eta_mins=(0, ), last_epoch=-1):
        self.periods = list(periods)
        self.restart_weights = list(restart_weights)
        self.eta_mins = list(eta_mins)
        if not len(self.periods) == len(self.restart_weights) == len(self.eta_mins) or not self.periods:
            raise ValueError('periods, restart_weights and eta_mins must be non-empty lists of the same length, '
                             f'got {len(self.periods)}, {len(self.restart_weights)} and {len(self.eta_mins)} '
                             'entries')
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in self.periods):
            raise ValueError(f'periods must be positive integers, got {self.periods}')
        self.cumulative_period = list(accumulate(self.periods))
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        iteration = min(self.last_epoch, self.cumulative_period[-1])
        idx = get_position_from_periods(iteration, self.cumulative_period)
        eta_min, weight, period = self.eta_mins[idx], self.restart_weights[idx], self.periods[idx]
        progress = (iteration - (self.cumulative_period[idx] - period)) / period
        return [
            eta_min + weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * progress))
            for base_lr in self.base_lrs
        ]
