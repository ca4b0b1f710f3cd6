"""The adaptive search: its lattice, and the real Searcher replayed on a shipped reference study (results
looked up, not trained): within budget, no trial twice, a law; stopping at a target; resumed and
extended searches repeat no trial."""

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from scalestudy.search import SEARCHES
from scalestudy.search.adaptive_plan import lattice
from scalestudy.search.replay import replay
from scalestudy.spec import SpecError, load_spec
from scalestudy.trial.config import expand_cells
from tests.search.test_search import REPO

REFERENCE = "mnist1d_cnn1d_m09"


def test_lattice_fills_gaps_up_to_x4_in_sqrt2_steps_keeps_probes_and_extends_past_the_ends():
    points = lattice((0.1, 0.2, 0.8, 51.2), beyond=1, bounds=None)
    ratios = np.diff(np.log(points))
    assert points == lattice((0.1, 0.2, 0.8, 51.2), beyond=1, bounds=None)  # the same floats every time
    assert {0.1, 0.2, 0.8, 51.2} <= set(points)
    inside = [r for r, lo in zip(ratios, points) if 0.05 <= lo < 0.8]
    assert max(inside) <= math.log(math.sqrt(2)) + 1e-9  # ×2 and ×4 gaps filled in √2 steps
    assert math.isclose(max(ratios), math.log(51.2 / 0.8))  # the ×64 probe gap is kept
    assert math.isclose(points[0], 0.05) and math.isclose(points[-1], 102.4)  # one factor 2 past each end
    assert lattice((0.1, 0.2), beyond=3, bounds=(0.08, 0.3)) == tuple(p for p in lattice((0.1, 0.2), 3, None)
                                                                       if 0.08 <= p <= 0.3)


def _table() -> pd.DataFrame:
    return pd.read_parquet(REPO / "scalestudy" / "calibration" / "data" / f"{REFERENCE}.parquet")


def _spec(*overrides: str):
    return load_spec(REPO / "search_spaces" / "reference" / f"{REFERENCE}.yaml",
                     ["search.algorithm=adaptive", "search.beyond_grid=0", *overrides])


def _evaluator(table: pd.DataFrame):
    """A recorded trial's final result for a proposed (B, m, ε, seed): ε as recorded (nearest in ln ε)."""
    by_cell = {key: group for key, group in table.groupby(["batch_size", "momentum"])}

    def evaluate(trial) -> dict:
        group = by_cell[(trial.batch_size, trial.momentum)]
        lrs = np.sort(group["lr"].unique())
        lr = lrs[np.argmin(np.abs(np.log(lrs / trial.lr)))]
        assert abs(math.log(lr / trial.lr)) < 1e-3, "the adaptive search left the recorded lattice"
        row = group[(group["lr"] == lr) & (group["seed"] == trial.seed)].iloc[0]
        return {"epoch": int(row["epochs"]), "diverged": bool(row["diverged"]), row["objective_metric"]: row["objective"]}

    return evaluate


def _keys(done) -> list[tuple]:
    return [(d.trial.batch_size, d.trial.momentum, d.trial.lr, d.trial.seed) for d in done]


def test_adaptive_replayed_on_a_reference_study_spends_its_budget_once_per_trial_and_gives_a_law():
    spec = _spec("search.budget={grid_fraction: 0.15}")
    cells = expand_cells(spec)
    plan = SEARCHES.get("adaptive")(spec, cells)
    done = replay(plan, _evaluator(_table()), concurrency=4)
    keys = _keys(done)
    assert len(keys) == len(set(keys))
    search = plan.search_alg
    assert search.spent <= search.budget < search.spent + spec.workload.epochs + 1e-9 or \
        search.stopped_because.startswith("no trial")
    assert {key[0] for key in keys} == {c.batch_size for c in cells}  # every batch size got trials
    assert search.widths and all(w is not None for w in search.widths.values())  # a law with an α interval
    seeds = pd.Series([key[3] for key in keys])
    assert seeds.nunique() > 2  # it chose seeds beyond the first two where they help


def test_adaptive_stops_once_alpha_is_as_narrow_as_its_target():
    spec = _spec("search.budget={grid_fraction: 0.5}", "search.target={alpha_ci_width: 5.0}")
    plan = SEARCHES.get("adaptive")(spec, expand_cells(spec))
    replay(plan, _evaluator(_table()), concurrency=4)
    assert plan.search_alg.stopped_because.startswith("α's interval")
    assert plan.search_alg.spent < 0.5 * sum(len(c.lr_grid) * c.workload.epochs for c in expand_cells(spec))


def test_a_restored_or_primed_search_repeats_no_trial(tmp_path):
    spec = _spec("search.budget={grid_fraction: 0.08}")
    cells = expand_cells(spec)
    evaluate = _evaluator(_table())
    first = SEARCHES.get("adaptive")(spec, cells)
    done = replay(first, evaluate, concurrency=3)
    path = tmp_path / "searcher.pkl"
    first.search_alg.save(str(path))

    bigger = _spec("search.budget={grid_fraction: 0.16}")
    resumed = SEARCHES.get("adaptive")(bigger, cells)
    budget = resumed.search_alg.budget
    resumed.search_alg.restore(str(path))  # Tune's --resume: the pickled state, then the larger budget
    resumed.search_alg.budget = budget
    more = replay(resumed, evaluate, concurrency=3)
    assert not set(_keys(done)) & set(_keys(more)) and more

    # --extend: a fresh search primed with the study's finished trials (as MLflow has them)
    from scalestudy.run.study_runs import TrialInStudy

    finished = {d.trial.trial_key: TrialInStudy(d.trial.trial_key, "run", "name", "diverged" if d.result["diverged"]
                                                else "ok", d.result.get("test_acc"), 0, ())
                for d in done}
    primed = SEARCHES.get("adaptive")(bigger, cells)
    assert primed.search_alg.prime(finished, spec.objective) == len(done)
    extended = replay(primed, evaluate, concurrency=3)
    assert not set(_keys(done)) & set(_keys(extended)) and extended
    assert primed.search_alg.spent <= primed.search_alg.budget
    pickle.dumps(primed.search_alg)  # Tune pickles the searcher with its experiment


@pytest.mark.parametrize("overrides, message", [
    (["search.algorithm=adaptive", "search.trials_per_cell=4"], "search.trials_per_cell: only for algorithms"),
    (["search.algorithm=bracket", "search.trials_per_cell=4", "search.budget={trial_epochs: 10}"],
     "search.budget: only for algorithm adaptive"),
    (["search.algorithm=adaptive", "search.budget={trial_epochs: 10, grid_fraction: 0.2}"], "search.budget"),
    (["search.algorithm=adaptive", "search.target={alpha_ci_width: 0}"], "search.target.alpha_ci_width"),
])
def test_bad_adaptive_settings_are_refused(overrides, message):
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        load_spec(REPO / "search_spaces" / "quickstart.yaml", overrides)


def test_alpha_sensitivity_and_new_row_value_match_their_closed_forms():
    from scalestudy.search.adaptive_plan import alpha_sensitivities, new_row_value

    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(6), np.log([16, 32, 64, 128, 256, 512]), rng.normal(size=6)])
    variances = rng.uniform(0.05, 0.5, size=6)

    def var_alpha(v):
        return np.linalg.inv(X.T @ (X / v[:, None]))[1, 1]

    sensitivity, M = alpha_sensitivities(X, 1 / variances, 1)
    for i in range(6):  # ∂Var(α)/∂vᵢ by central differences
        step = np.zeros(6)
        step[i] = 1e-6
        numeric = (var_alpha(variances + step) - var_alpha(variances - step)) / 2e-6
        assert math.isclose(sensitivity[i], numeric, rel_tol=1e-4)
    x, weight = np.array([1.0, math.log(1024), 0.3]), 4.0  # a new row: the drop of Var(α), recomputed in full
    bigger = np.vstack([X, x])
    direct = var_alpha(variances) - np.linalg.inv(bigger.T @ (bigger * np.append(1 / variances, weight)[:, None]))[1, 1]
    assert math.isclose(new_row_value(M, x, weight, (1,)), direct / var_alpha(variances), rel_tol=1e-9)  # as a share

    def var_beta(rows, w):
        return np.linalg.inv(rows.T @ (rows * w[:, None]))[2, 2]

    before, after = var_beta(X, 1 / variances), var_beta(bigger, np.append(1 / variances, weight))
    assert math.isclose(new_row_value(M, x, weight, (1, 2)),
                        direct / var_alpha(variances) + (before - after) / before, rel_tol=1e-9)


def test_a_trial_running_when_the_study_stopped_counts_when_tune_resumes_it(tmp_path):
    """Tune resumes a running trial under its own id: the restored search counts its epochs (as pending,
    then spent) and does not propose its (ε, seed) again, so the budget holds across --resume."""
    spec = _spec("search.budget={grid_fraction: 0.08}")
    search = SEARCHES.get("adaptive")(spec, expand_cells(spec)).search_alg
    config = search.suggest("running")
    assert isinstance(config, dict)
    key, lr, seed, epochs = search.trials["running"]
    path = tmp_path / "searcher.pkl"
    search.save(str(path))

    restored = SEARCHES.get("adaptive")(spec, expand_cells(spec)).search_alg
    restored.restore(str(path))
    assert restored._pending_epochs() == epochs and (lr, seed) in restored.sets[key].runs
    restored.on_trial_complete("running", {"epoch": epochs, "test_acc": 0.5, "test_loss": 1.0, "diverged": 0})
    assert restored.spent == epochs and restored._pending_epochs() == 0 and not restored.resumed


def test_cell_gains_add_each_cells_share_of_the_law_residual_scale():
    """Var(θⱼ) = s²·Mⱼⱼ with s² = max(RSS/dof, floor) (the analysis' least squares): a cell's gain for a slope
    is its weight's term scaled by s², plus, above the floor, the drop of s²·Mⱼⱼ if its residual were gone,
    as a share of Var(θⱼ); the slopes' shares add (α, and β when the cells span two momenta)."""
    from scalestudy.analysis.fits._stats import least_squares
    from scalestudy.search.adaptive_plan import alpha_sensitivities, cell_gains

    rng = np.random.default_rng(1)
    batch = np.log([16, 32, 64, 128, 256, 512, 1024] * 2)
    momentum = np.log1p(-np.repeat([0.0, 0.9], 7))
    X = np.column_stack([np.ones(14), batch, momentum])
    variances = rng.uniform(0.05, 0.5, size=14)
    weights = 1 / variances
    root = np.sqrt(weights)
    dof = 14 - 3
    for noise, floor in ((1.5, 0.1), (1e-3, 0.1)):  # residual scale above, then below, its floor
        y = -6 + 0.8 * X[:, 1] + 0.9 * X[:, 2] + noise * rng.normal(size=14) * np.sqrt(variances)
        fit = least_squares(X * root[:, None], y * root, ("log_k", "alpha", "beta"), min_scale=floor)
        residual = weights * (y - X @ np.array(fit.coef)) ** 2
        above = residual.sum() / dof > floor
        assert above == (noise > 1)
        expected = np.zeros(14)
        for j in (1, 2):
            sensitivity, M = alpha_sensitivities(X, weights, j)
            scale = fit.cov[j][j] / M[j, j]  # the analysis' s²
            assert math.isclose(scale, max(residual.sum() / dof, floor), rel_tol=1e-9)
            share = (scale * sensitivity * variances + (M[j, j] * residual / dof if above else 0)) / fit.cov[j][j]
            np.testing.assert_allclose(cell_gains(X, y, variances, weights, (j,), floor)[0], share, rtol=1e-9)
            expected += share
        np.testing.assert_allclose(cell_gains(X, y, variances, weights, (1, 2), floor)[0], expected, rtol=1e-9)
    alone = X[:2, :2]  # no dof: the weights' term alone
    sensitivity, M = alpha_sensitivities(alone, weights[:2], 1)
    assert math.isclose(cell_gains(alone, y[:2], variances[:2], weights[:2], (1,), 0.1)[0][0],
                        sensitivity[0] * variances[0] / M[1, 1])


def _point_set(runs: dict[float, tuple[int, ...]]):
    from scalestudy.search.adaptive_plan import PointSet

    points = PointSet(("g", 64, 0.9), 64, 0.9, lattice((0.0125, 0.025, 0.05, 0.1, 0.2, 0.4), 0, None),
                      (0, 1, 2, 3), 0.05, (0.0125, 0.4))
    for lr, seeds in runs.items():
        near = min(points.lattice, key=lambda p: abs(math.log(p / lr)))
        points.runs.update({(near, seed): "ok" for seed in seeds})
    return points


def test_refinement_fills_a_gap_where_the_optimum_may_be_before_adding_seeds():
    """A flat top's peak can sit in a ×4 gap of the coarse design: once the best ε's √2 neighbours ran,
    the gap inside the ε that may still be the optimum is bisected (at the best ε's seeds); a gap outside
    them is not, and without such a gap the next step is one more seed at every contender."""
    from scalestudy.search.adaptive_plan import refinement

    both = (0, 1)
    points = _point_set({0.0177: both, 0.025: both, 0.0354: both, 0.05: both, 0.2: both, 0.4: both})
    step = refinement(points, 0.025, (0.017, 0.11))
    assert [(round(p.lr, 4), p.seed) for p in step] == [(0.1, 0), (0.1, 1)]
    assert all(p.why == "a gap where the optimum may be" for p in step)

    points = _point_set({0.0177: both, 0.025: both, 0.0354: both, 0.05: both, 0.0707: both, 0.4: (0,)})
    step = refinement(points, 0.025, (0.02, 0.04))  # contenders 0.0177–0.05; the ×5.7 gap lies outside
    assert {round(p.lr, 4) for p in step} == {0.0177, 0.025, 0.0354, 0.05} and {p.seed for p in step} == {2}


def test_a_steps_trials_share_the_drop_of_a_variance_falling_as_one_over_n():
    from scalestudy.search.adaptive_plan import trial_value

    for n, k in ((2, 1), (6, 4), (12, 8)):
        variance_after = (1 / (n + k)) / (1 / n)  # of a mean over n trials, when k more join
        assert math.isclose(k * trial_value(0.3, n, k), 0.3 * (1 - variance_after), rel_tol=1e-12)
    assert trial_value(1.0, 6, 1) > trial_value(1.0, 6, 4)  # a wide block is worth less per trial
