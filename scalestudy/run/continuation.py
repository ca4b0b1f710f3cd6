"""What an earlier run of a study leaves for this one: read from MLflow and checked before anything
starts, then the search plan of what is left to run.

``scalestudy run SPEC`` starts a study one of four ways:

* plain: a new study, refused when its experiment already holds a run of it (a second parent run of
  the same trials would train them again and leave two of each in the experiment);
* ``--new``: a second, separate run of the study (its own parent run and storage folder); the
  analysis counts each trial once, its latest finished run, and says the experiment holds several;
* ``--resume``: continue the latest run as it was (Tune's own restore), with the study's spec;
* ``--extend``: add the trials of a grown spec (:mod:`scalestudy.run.spec_growth`) to the same study:
  its parent run, its storage folder, a fresh Tune experiment over the trials not finished yet.
  Trials are told apart by trial key; an interrupted trial continues from the checkpoints in its
  folder, which is named by its key. A grid or quasi-random search runs the trials of its plan that
  have not finished (its plan must still hold every finished trial); optuna and bracket search the
  new cells only; ``adaptive`` starts again from every finished trial of the study
  (:meth:`~scalestudy.search.adaptive.AdaptiveSearch.prime`) with the grown budget, target or cells.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import yaml

from scalestudy.endpoints import StudyError, sqlite_path
from scalestudy.run import tracking
from scalestudy.run.spec_growth import LISTED_SEARCHES, SpecGrowth, compare_specs
from scalestudy.run.storage import StudyRun, tune_statuses
from scalestudy.run.study_runs import CELL_PARAMS, TrialInStudy, stored_spec, study_parents, trial_states
from scalestudy.search.plan import SearchPlan
from scalestudy.spec import StudySpec
from scalestudy.trial.axes import cell_axis_params
from scalestudy.trial.config import Cell
from scalestudy.trial.record import INTERRUPTED_TAG, trial_params

MODES = ("run", "new", "resume", "extend")


@dataclass(frozen=True)
class EarlierStudy:
    """The study a ``--resume`` or ``--extend`` continues, as MLflow has it."""

    parent_run_id: str
    trials: dict[str, TrialInStudy]  # by trial key
    growth: SpecGrowth | None  # how this run's spec grows the study's (None: its spec could not be read)

    def finished(self) -> dict[str, TrialInStudy]:
        """Trials that ended as data (ok, diverged, stopped early): never run again."""
        return {key: state for key, state in self.trials.items() if state.finished}

    def unfinished(self) -> list[TrialInStudy]:
        """Trials that started and have not ended (interrupted, or their driver died)."""
        return [state for state in self.trials.values() if not state.ended]


def earlier_study(spec: StudySpec, mode: str, previous: StudyRun | None, tracking_uri: str) -> EarlierStudy | None:
    """The study this run continues (``--resume``, ``--extend``), its spec checked against this one;
    for a plain run, a refusal when the study exists already. Raises :class:`StudyError` (one line)."""
    if mode == "new":
        return None
    if mode == "run":
        _refuse_second_run(spec, tracking_uri)
        return None
    client = tracking.client(tracking_uri)
    parent = previous.parent_run_id
    text = stored_spec(client, parent)
    growth = compare_specs(_resolved(text), spec.model_dump(mode="json")) if text else None
    if growth is not None and growth.refused is not None:
        field, why = growth.refused
        raise StudyError(f"{field}: {why}; study {spec.name!r} ran with the earlier value: keep it, or start a "
                         "separate study with --new")
    if mode == "resume" and growth is not None and growth.grown:
        raise StudyError(f"--resume: the spec grows study {spec.name!r} ({growth.describe()}): add its new trials "
                         "with --extend")
    if mode == "extend" and growth is None:
        raise StudyError(f"--extend: cannot read the spec study {spec.name!r} ran with (spec.yaml of its MLflow run "
                         f"{parent}), so nothing can be checked; start a separate study with --new")
    if mode == "extend" and not growth.grown:
        raise StudyError(f"--extend: the spec adds no trials to study {spec.name!r} (it is the spec the study ran); "
                         "continue it with --resume")
    earlier = EarlierStudy(parent, trial_states(client, previous.experiment_id, parent, spec.objective.metric), growth)
    unfinished = earlier.unfinished()
    if mode == "extend" and unfinished and spec.search.algorithm not in LISTED_SEARCHES:
        raise StudyError(f"--extend: study {spec.name!r} has {len(unfinished)} unfinished trial(s) of its "
                         f"{spec.search.algorithm} search; finish them with --resume first, then extend it")
    return earlier


def study_plan(spec: StudySpec, cells: list[Cell], mode: str, earlier: EarlierStudy | None,
               run: StudyRun | None = None) -> SearchPlan | None:
    """The search plan this run hands Tune: the spec's over ``cells``; for ``--extend``, what is left of
    it. For ``--resume``, None: restore Tune's experiment (``run``'s) as it was, unless a grid or
    quasi-random study has trials left that Tune's last snapshot does not hold (an extension
    interrupted before its first snapshot): then a fresh plan of what is left, in the same folder."""
    from scalestudy.search import SEARCHES

    build = SEARCHES.get(spec.search.algorithm)
    listed = spec.search.algorithm in LISTED_SEARCHES
    if mode == "resume":
        if not listed or earlier is None or run is None:
            return None
        plan = build(spec, cells)
        ended = {key for key, state in earlier.trials.items() if state.ended}
        left = {trial["trial_key"] for trial in plan.param_space["trial"]["grid_search"]} - ended
        return None if left <= set(tune_statuses(run)) else _without(plan, earlier.finished())
    if mode != "extend" or earlier is None:
        return build(spec, cells)
    grown = earlier.growth.describe() if earlier.growth is not None else "the spec"
    if spec.search.algorithm == "adaptive":
        plan = build(spec, cells)
        plan.search_alg.prime(earlier.finished(), spec.objective)
        return plan
    if not listed:
        ran = {state.cell for state in earlier.trials.values()}
        new_cells = [cell for cell in cells if cell_params(cell) not in ran]
        if not new_cells:
            raise StudyError(f"--extend: the grown spec adds no cell to study {spec.name!r} ({grown}); a "
                             f"{spec.search.algorithm} search grows by new cells only")
        return build(spec, new_cells)
    plan = build(spec, cells)
    finished = earlier.finished()
    lost = sorted(set(finished) - {trial["trial_key"] for trial in plan.param_space["trial"]["grid_search"]})
    if lost:
        raise StudyError(f"--extend: {len(lost)} finished trial(s) of study {spec.name!r} would not be trials of the "
                         f"grown spec (e.g. {lost[0]}): {grown} moves the ε they ran at; keep it, or start a "
                         "separate study with --new")
    left = _without(plan, finished)
    if not left.total_trials:
        raise StudyError(f"--extend: every trial of the grown spec has finished in study {spec.name!r} already")
    return left


def _without(plan: SearchPlan, finished: dict[str, TrialInStudy]) -> SearchPlan:
    """A listed plan without the trials that finished (interrupted ones stay: they continue)."""
    from ray import tune

    left = [trial for trial in plan.param_space["trial"]["grid_search"] if trial["trial_key"] not in finished]
    return replace(plan, param_space={**plan.param_space, "trial": tune.grid_search(left)}, total_trials=len(left))


def cell_params(cell: Cell) -> tuple[str, ...]:
    """The cell's :data:`~scalestudy.run.study_runs.CELL_PARAMS` and optimizer axes, as the record writes them
    for its trials."""
    params = trial_params(cell.trial(cell.lr_grid[0]).to_dict())
    return (*(params[name] for name in CELL_PARAMS), *cell_axis_params(params))


def _refuse_second_run(spec: StudySpec, tracking_uri: str) -> None:
    if tracking_uri.startswith("sqlite:"):
        path = sqlite_path(tracking_uri)
        if path is None or not path.is_file():
            return  # no store yet (and none is created here)
    parents = study_parents(tracking.client(tracking_uri), spec.experiment_name, spec.name)
    if not parents:
        return
    latest = parents[-1]
    state = "interrupted" if latest.data.tags.get(INTERRUPTED_TAG) else latest.info.status.lower()
    raise StudyError(f"study {spec.name!r} already ran in experiment {spec.experiment_name!r} (parent run "
                     f"{latest.info.run_id}, {state}{f', and {len(parents) - 1} earlier' if len(parents) > 1 else ''}"
                     "): continue it with --resume, add the trials of a grown spec with --extend, or start a "
                     "second, separate run with --new")


def _resolved(text: str) -> dict:
    """The stored spec with this version's defaults filled in (a spec stored by an earlier version lacks
    the fields added since); as stored when it no longer validates."""
    raw = yaml.safe_load(text)
    try:
        return StudySpec.model_validate(raw).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - compared as it is: any difference is then named
        return raw
