"""Diagnostics of trained solutions from Keskar et al. 2017 (large-batch training and sharp minima).

- :func:`epsilon_sharpness`: Metric 2.1, the relative loss increase in a small box around the
  trained parameters (full space or a random subspace), in percent; :func:`sharpness_metrics`
  gives it for a model's cross-entropy on given inputs (what the epoch loop logs).
- :func:`interpolate` / :func:`plot_interpolation`: losses and accuracies along the straight
  line between two solutions (their Fig. 3).

Both are pure library functions of a model, its inputs and options: the caller builds the
model, the data and the loss or evaluation callback; nothing here imports the rest of scalestudy
(the loop calls in, ``scalestudy interpolate`` in :mod:`scalestudy.run.interpolate` too).
"""

from scalestudy.diagnostics.interpolation import (
    DEFAULT_ALPHAS,
    InterpolationResult,
    interpolate,
    interpolate_state,
    plot_interpolation,
)
from scalestudy.diagnostics.sharpness import SharpnessResult, epsilon_sharpness, sharpness_metrics

__all__ = [
    "DEFAULT_ALPHAS",
    "InterpolationResult",
    "SharpnessResult",
    "epsilon_sharpness",
    "interpolate",
    "interpolate_state",
    "plot_interpolation",
    "sharpness_metrics",
]
