"""Checks of the ``branching:`` block across fields: the grid is one base run, its schedule constant,
the objective a loss, and the checkpoints fit the base's epochs (:mod:`scalestudy.spec.branching`).
The branches' batch sizes are checked with every other batch in :mod:`scalestudy.spec.checks`."""

from __future__ import annotations

import importlib.util

from scalestudy.spec.base import SpecError
from scalestudy.spec.branching import checkpoint_epochs
from scalestudy.spec.schema import LinearRuleLR, StudySpec


def branch_batch_sizes(spec: StudySpec, batch_size: int) -> list[int]:
    """The batch sizes the branches from a base at ``batch_size`` train at (none without branching)."""
    if spec.branching is None:
        return []
    return [batch_size * factor for factor in spec.branching.batch_factors]


def check_branching(spec: StudySpec, dataset_size: int) -> None:
    """One-line :class:`SpecError` naming the field when the study cannot branch; ``dataset_size``: N."""
    branching = spec.branching
    if branching is None:
        return
    if spec.sections:
        raise SpecError("sections: a branched study has one base run; remove sections or the branching block")
    if spec.resources.workers_per_trial != 1:
        raise SpecError(f"resources.workers_per_trial: a branched study runs one-worker trials (got "
                        f"{spec.resources.workers_per_trial})")
    grid = spec.grid
    lrs = len(grid.lr.multipliers) if isinstance(grid.lr, LinearRuleLR) else len(grid.lr)
    for name, count in (("batch_size", len(grid.batch_size)), ("lr", lrs), ("momentum", len(grid.momentum)),
                        ("seeds", len(grid.seeds)), ("dataset_size", len(grid.dataset_size or [0]))):
        if count != 1:
            raise SpecError(f"grid.{name}: a branched study's grid is its one base run: give exactly one value "
                            f"(got {count}); the branches' seeds are branching.seeds")
    if len(spec.schedule) != 1 or spec.schedule[0].kind != "constant" or spec.schedule[0].warmup_epochs:
        raise SpecError("schedule: a branched study's base run trains at a constant (B, ε, m): one schedule of "
                        "kind constant without warmup_epochs")
    if spec.objective.direction != "min":
        raise SpecError(f"analysis.objective: branching compares losses (tolerance in the objective's units): "
                        f"give a minimised metric such as test_loss or train_loss, not {spec.objective.metric} "
                        f"({spec.objective.direction})")
    if spec.search.algorithm != "grid":
        raise SpecError(f"search.algorithm: a branched study's base run is the grid's cell: use grid, not "
                        f"{spec.search.algorithm}")
    too_large = [f for f in branching.batch_factors if f * grid.batch_size[0] > dataset_size]
    if too_large:
        raise SpecError(f"branching.batch_factors: {too_large[0]} × grid.batch_size {grid.batch_size[0]} exceeds the "
                        f"training-set size {dataset_size}; allowed: factors up to "
                        f"{dataset_size // grid.batch_size[0]}")
    # The comparison plans its warmup from CBS(t) mid-study: the estimator must be there before anything starts.
    if branching.compare and importlib.util.find_spec("scalestudy.analysis.fits.branch_cbs") is None:
        raise SpecError("branching.compare: needs the CBS estimator scalestudy.analysis.fits.branch_cbs, which this "
                        "installation lacks; set compare: false")
    try:
        checkpoint_epochs(branching, spec.workload.epochs, dataset_size, grid.batch_size[0])
        branching.rule_exponent()  # the law rule's file, read before anything starts
    except ValueError as error:
        raise SpecError(str(error)) from None
