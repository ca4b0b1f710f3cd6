"""Trials stopped early with a bound on their final objective, in one cell's ε* fit: censored observations.

A trial the search stopped by its bound (``search.early_stopping: {kind: cell_bound}``) did not
finish, so its final objective is unknown; what is known is that it lies between the failure value
(the worst finite value, :func:`~scalestudy.analysis.fits.cell_optimum.frontier.failure_accuracy`)
and its bound U (the trial table's ``objective_bound``, :mod:`scalestudy.trial.curve_bound`). The
cell is fitted as :func:`~scalestudy.analysis.fits.cell_optimum.frontier.fit_cell` fits any cell, on
its finished trials alone (as if the stopped ones had not run), then with the stopped trials at the
ends of what they could have reached:

* every one at U, the curve at their ε as high as it can be;
* every one at the failure value, as low as it can be;
* with stopped trials at several ε, those at one ε at U and the others at the failure value, for
  each of those ε: whichever of them could be the best.

A fit at U decides the edges: a cell whose lrs past its best were stopped with bounds below the best
is not an edge on that side (even at their best they are worse than it), and one where a stopped
trial could still end above the best at the end of the search stays open there. The interval is the
hull of every fit's. An upper bound used as a value pulls the vertex towards its ε and the failure
value pulls it away; values between the ends move the vertex and the mode set between where the
ends put them, so the hull is conservative and, holding the finished trials' own interval, never
narrower than the fit without the stopped trials. The point estimate stays the finished trials'
vertex where they bound the optimum themselves (real values), else the one with every stopped trial
at U. The intervals are drawn with the noise of the study's finished trials (the prior every cell is
shrunk towards is made from them alone).

A cell that any of the fits leaves unusable (a stopped trial whose bound is above the best, at the
end of the search) is reported as that fit found it. A cell's ``n_trials`` counts its stopped trials
too (``n_censored`` of them); its curve (``lrs``, ``mean_acc``, ``n_runs``) is that of the fit its
point estimate came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from scalestudy.analysis.fits.cell_optimum.optimum import CellOptimum
from scalestudy.analysis.inputs.trial_table import ACCURACY, BOUND

CellFit = Callable[[pd.DataFrame], CellOptimum]  # fit_cell of one cell, every setting but its trials bound


def fit_with_censored(fit: CellFit, finished: pd.DataFrame, censored: pd.DataFrame, floor: float) -> CellOptimum:
    """ε* of one cell from its ``finished`` trials and its ``censored`` ones (stopped, with ``objective_bound``);
    ``floor`` is the failure value in the objective's units."""
    value = "objective" if "objective" in finished.columns else ACCURACY.metric  # what fit_cell reads
    bounds = censored[BOUND].to_numpy(float)

    def at_bounds(lrs) -> CellOptimum:
        """The cell with the stopped trials at ``lrs`` at their bounds, the others at the failure value."""
        values = np.where(censored["lr"].isin(lrs), bounds, floor)
        return fit(pd.concat([finished, censored.assign(**{value: values})], ignore_index=True))

    lrs = censored["lr"].unique()
    high = at_bounds(lrs)
    ends = [high, at_bounds(()), *(at_bounds((lr,)) for lr in lrs if len(lrs) > 1)]
    n, trials = len(censored), len(finished) + len(censored)
    for end in ends:
        if not end.usable:
            counted = f"{n} trials stopped early, censored at their bounds" if n > 1 else \
                "1 trial stopped early, censored at its bound"
            return replace(end, n_censored=n, n_trials=trials, reason=f"{end.reason or end.status} ({counted})")
    plain = fit(finished)
    base = plain if plain.usable else high
    intervals = [cell.ci95 for cell in (plain, *ends) if cell.usable]
    if any(ci is None for ci in intervals):
        return replace(base, ci95=None, n_censored=n, n_trials=trials)
    low, top = min(ci[0] for ci in intervals), max(ci[1] for ci in intervals)
    return replace(base, ci95=(low, top), lr_opt=min(max(base.lr_opt, low), top), n_censored=n, n_trials=trials)
