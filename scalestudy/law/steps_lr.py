"""The learning rate that a steps-to-target count holds at.

A steps-to-target line counts, at each batch size B_i, the fewest updates to the target over the
learning rates searched: the count S(B_i) is made at that B's steps-optimal ε_S(B_i), which is not
the law's ε*(B_i) (the ε with the best final objective). Training at ε* for S(B) updates would mix
the two, so a plan for a target trains at ε_S.

Between and beyond the measured batch sizes, ε_S(B) = ε*(B)·r(B): the law carries the dependence on
B (what it was fitted for), and the measured ratio r = ε_S/ε* is interpolated linearly in ln B
between the points and held at the nearest end outside them. At a measured B (at the line's momentum
and N) it is that B's ε_S.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Callable, Sequence


def steps_lr_ratio(batch_size: float, batch_sizes: Sequence[float], lrs: Sequence[float],
                   law_lr: Callable[[float], float]) -> float | None:
    """r = ε_S/ε* at ``batch_size`` from the line's (B_i, ε_S(B_i)) and the law's ε*(B) at the line's
    momentum and N (``law_lr``), or None when the line holds no ε (a law file of an earlier version)."""
    if not lrs:
        return None
    if len(lrs) != len(batch_sizes):
        raise ValueError(f"{len(lrs)} learning rates for {len(batch_sizes)} batch sizes")
    logs = [math.log(b) for b in batch_sizes]  # ascending, as the law file holds them
    ratios = [math.log(lr / law_lr(b)) for b, lr in zip(batch_sizes, lrs)]
    x = math.log(batch_size)
    i = bisect_left(logs, x)
    if i == 0:
        return math.exp(ratios[0])
    if i == len(logs):
        return math.exp(ratios[-1])
    share = (x - logs[i - 1]) / (logs[i] - logs[i - 1])
    return math.exp(ratios[i - 1] + share * (ratios[i] - ratios[i - 1]))
