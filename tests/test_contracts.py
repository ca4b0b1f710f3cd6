"""Contracts every registered schedule and every registered search algorithm passes, driven by the
registries (a new entry is tested without touching this file)."""

import math
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalestudy.noise import noise_scale
from scalestudy.schedules import PER_UPDATE_DECAY, SCHEDULES, Hyper, hyper_at, milestones_passed, trajectory
from scalestudy.search import SEARCHES
from scalestudy.search.cells import cell_budget, lr_bounds, planned_trials
from scalestudy.search.replay import replay
from scalestudy.spec import Schedule, spec_from_dict
from scalestudy.trial.config import expand_cells

EPOCHS = 12

# --- schedules ------------------------------------------------------------------------------------


@st.composite
def schedules(draw, kind: str):
    """A schedule of ``kind`` and an initial (B, ε, m) it can run: B × factor stays whole."""
    factor = draw(st.sampled_from([1.5, 2.0, 3.0, 5.0]))
    milestones = sorted(draw(st.sets(st.integers(1, EPOCHS - 1), max_size=4)))
    if kind in PER_UPDATE_DECAY:  # no milestones: it decays every update
        milestones = []
    batch_size = 16 * draw(st.integers(1, 8))  # 16·1.5⁴ = 81: whole for up to 4 milestones
    grown = [batch_size * factor ** k for k in range(len(milestones) + 1)]
    max_batch = int(draw(st.sampled_from(grown))) if kind == "hybrid" else None
    schedule = Schedule(kind=kind, milestones=milestones, factor=factor, max_batch_size=max_batch,
                        momentum_factor=draw(st.sampled_from([1.5, 2.0, 4.0])))
    initial = Hyper(batch_size, draw(st.floats(1e-4, 10.0)), draw(st.sampled_from([0.0, 0.5, 0.9, 0.99])))
    return schedule, initial


CONTRACT = settings(derandomize=True, max_examples=60, deadline=None)


@pytest.mark.parametrize("kind", SCHEDULES.names())
@given(data=st.data())
@CONTRACT
def test_a_schedule_is_a_pure_function_of_the_epoch(kind, data):
    schedule, initial = data.draw(schedules(kind))
    forward = trajectory(schedule, initial, EPOCHS)
    backward = [hyper_at(schedule, initial, epoch) for epoch in reversed(range(EPOCHS))][::-1]
    assert forward == backward  # no state carried from one call to the next
    assert forward[0] == initial  # nothing changes before the first milestone
    for epoch in range(1, EPOCHS):  # and nothing between milestones
        if milestones_passed(schedule, epoch) == milestones_passed(schedule, epoch - 1):
            assert forward[epoch] == forward[epoch - 1]


@pytest.mark.parametrize("kind", SCHEDULES.names())
@given(data=st.data())
@CONTRACT
def test_a_schedule_keeps_batches_whole_and_never_raises_the_noise_scale(kind, data):
    schedule, initial = data.draw(schedules(kind))
    rows = trajectory(schedule, initial, EPOCHS)
    examples = 10**7  # N ≥ every B: N/B − 1 > 0
    noise = [noise_scale(h.lr, h.momentum, examples, h.batch_size) for h in rows]
    for before, after, g_before, g_after in zip(rows, rows[1:], noise, noise[1:]):
        assert isinstance(after.batch_size, int) and after.batch_size >= before.batch_size >= initial.batch_size
        assert after.lr > 0 and 0 <= after.momentum < 1
        assert g_after <= g_before * (1 + 1e-12)
    if schedule.max_batch_size is not None:
        assert max(h.batch_size for h in rows) <= max(schedule.max_batch_size, initial.batch_size)


@pytest.mark.parametrize("kind", SCHEDULES.names())
def test_every_milestone_lowers_the_noise_scale_by_factor_unless_constant(kind):
    """Smith et al. 2018: each schedule lowers g by ``factor`` per milestone in its own way (B ≪ N)."""
    if kind in PER_UPDATE_DECAY:
        pytest.skip(f"{kind} has no milestones (its per-update decay is tested in test_schedules.py)")
    schedule = Schedule(kind=kind, milestones=[1, 2], factor=4, max_batch_size=10**9)
    examples = 10**12
    g = [noise_scale(h.lr, h.momentum, examples, h.batch_size) for h in trajectory(schedule, Hyper(128, 0.1, 0.9), 3)]
    step = 1 if kind == "constant" else 4
    assert g[1] == pytest.approx(g[0] / step, rel=1e-6) and g[2] == pytest.approx(g[0] / step**2, rel=1e-6)


@pytest.mark.parametrize("kind", sorted(PER_UPDATE_DECAY))
@given(warmup=st.integers(0, 50), after=st.integers(1, 200))
@CONTRACT
def test_a_per_update_decay_starts_at_1_after_the_warmup_and_never_rises(kind, warmup, after):
    decay, total = PER_UPDATE_DECAY[kind], warmup + after
    factors = [decay(u, warmup, total) for u in range(total)]
    assert factors[:warmup] == [1.0] * warmup and factors[warmup] == 1.0  # the warmup alone ramps ε
    assert all(0 < f <= 1 for f in factors)
    assert all(b <= a for a, b in zip(factors, factors[1:]))


# --- search algorithms ------------------------------------------------------------------------------

LR_RANGE = (1e-3, 10.0)


def contract_spec(algorithm: str, seed: int = 0, objective: dict | None = None, early_stopping: dict | None = None):
    search = {"algorithm": algorithm, "seed": seed, "early_stopping": early_stopping}
    if algorithm != "grid":
        search |= {"lr_range": list(LR_RANGE)} | ({"budget": {"trial_epochs": 400}} if algorithm == "adaptive"
                                                  else {"trials_per_cell": 5})
    return spec_from_dict({
        "analysis": {"objective": objective},
        "name": "contract",
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 512, "test_size": 128},
                     "model": "mlp", "epochs": 3, "ghost_batch_size": 16},
        "grid": {"batch_size": [16, 64], "momentum": [0.0, 0.9], "seeds": [0, 1],
                 "lr": {"reference_batch_size": 32, "reference_lr": 0.05, "reference_momentum": 0.9,
                        "multipliers": [0.1, 0.5, 2, 10]}},
        "sections": {"law": {}, "fixed": {"grid": {"batch_size": [32], "lr": [0.05], "momentum": [0.9]}}},
        "search": search,
    })


def response(trial) -> dict:
    """Accuracy peaks at ε* = 0.05·(B/32)·(1−m)/0.1 and ε above 1.5·ε* diverges."""
    optimum = 0.05 * trial.batch_size / 32 * (1 - trial.momentum) / 0.1
    epochs = trial.workload.epochs
    if trial.lr > 1.5 * optimum:
        return {"test_acc": math.nan, "diverged": 1, "epoch": 1, "updates": 8}
    x = math.log(trial.lr / optimum)
    return {"test_acc": 0.2 + 0.7 * math.exp(-x * x / 2), "diverged": 0, "epoch": epochs, "updates": 8 * epochs}


def run_search(algorithm: str, seed: int = 0):
    spec = contract_spec(algorithm, seed)
    cells = expand_cells(spec)
    plan = SEARCHES.get(algorithm)(spec, cells)
    return spec, cells, plan, replay(plan, response, concurrency=3)


@pytest.mark.parametrize("algorithm", SEARCHES.names())
def test_a_search_runs_its_cells_within_range_and_budget_and_ends(algorithm):
    spec, cells, plan, done = run_search(algorithm)
    assert any(item.result["diverged"] for item in done) or algorithm == "grid"  # it met divergence
    def coordinates(c):
        return c.section, c.schedule.kind, c.batch_size, c.momentum, c.seed

    by_cell = {coordinates(c): c for c in cells}
    counts = Counter()
    for item in done:
        trial = item.trial
        cell = by_cell[coordinates(trial)]
        assert trial == cell.trial(trial.lr)  # the cell's config at that ε, keyed from exact values
        low, high = lr_bounds(spec, cell)
        assert low <= trial.lr <= high
        counts[coordinates(cell)] += 1
    if algorithm == "adaptive":  # one budget for the study, in trial-epochs, not per cell
        assert plan.search_alg.spent <= plan.search_alg.budget
    else:
        assert all(counts[coordinates(cell)] <= cell_budget(spec, cell) for cell in cells)
    if algorithm == "adaptive":  # it chooses the seeds: every (section, schedule, B, m) ran
        assert {key[:4] for key in counts} == {key[:4] for key in by_cell}
    else:
        assert set(counts) == set(by_cell)  # every cell ran
    assert planned_trials(spec, cells) == plan.total_trials
    assert len(done) <= plan.total_trials or algorithm == "adaptive"  # its budget is in trial-epochs
    if algorithm in ("grid", "quasi_random", "optuna"):
        assert len(done) == plan.total_trials
    assert len({item.trial.trial_key for item in done}) == len(done)  # never the same trial twice
    if plan.search_alg is not None:
        assert plan.search_alg.suggest("after-the-end") == "FINISHED"


@pytest.mark.parametrize("algorithm", SEARCHES.names())
def test_a_search_is_reproducible_by_its_seed(algorithm):
    first = [item.trial.trial_key for item in run_search(algorithm, seed=3)[3]]
    assert [item.trial.trial_key for item in run_search(algorithm, seed=3)[3]] == first


# --- every search ranks by the study's objective ----------------------------------------------------

OBJECTIVES = {"accuracy": {"metric": "test_acc", "direction": "max"},
              "loss": {"metric": "test_loss", "direction": "min"}}


def best_lr(trial) -> float:
    """2.5 times the linear rule's ε, so that a search has to move away from where it starts."""
    return 2.5 * 0.05 * trial.batch_size / 32 * (1 - trial.momentum) / 0.1


def quality(cell, lr: float) -> float:
    """How good ε is in the cell, in (0, 1]: 1 at ``best_lr``."""
    x = math.log(lr / best_lr(cell))
    return math.exp(-x * x / 2)


def objective_response(metric: str):
    """Trials that report the objective's metric alone (no test_acc for a loss: as a language model's).
    The metric is best at ``best_lr`` (an accuracy highest, a loss lowest) and ε above 1.5 times it diverge,
    reporting NaN."""
    def answer(trial) -> dict:
        epochs = trial.workload.epochs
        if trial.lr > 1.5 * best_lr(trial):
            return {metric: math.nan, "diverged": 1, "epoch": 1, "updates": 8}
        value = 0.2 + 0.7 * quality(trial, trial.lr) if metric == "test_acc" else 2.5 - 1.5 * quality(trial, trial.lr)
        return {metric: value, "diverged": 0, "epoch": epochs, "updates": 8 * epochs}

    return answer


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("algorithm", SEARCHES.names())
def test_a_search_finds_the_best_lr_by_the_study_objective(algorithm, objective):
    spec = contract_spec(algorithm, objective=OBJECTIVES[objective])
    cells = expand_cells(spec)
    plan = SEARCHES.get(algorithm)(spec, cells)
    done = replay(plan, objective_response(spec.objective.metric), concurrency=3)
    assert len(done) >= len(cells)
    if plan.search_alg is None:
        return  # grid and quasi_random choose no ε from results: only their early stopping ranks (below)
    if algorithm == "adaptive":  # its cells span the seeds: ε* from its own fit of each (B, m)
        from scalestudy.search.cells import law_group

        optima = plan.search_alg.optima()
        found = [(cell, optima[(law_group(cell), cell.batch_size, cell.momentum)]) for cell in cells
                 if (law_group(cell), cell.batch_size, cell.momentum) in optima]
    else:
        found = [(cell, line["optimum"]) for cell, line in zip(cells, plan.search_alg.summary())
                 if line["optimum"] is not None]
    assert len(found) >= len(cells) / 2, plan.search_alg.summary()  # most cells bracket their best ε
    for cell, optimum in found:
        # At the best ε it tried by the objective (within the bracket's noise allowance), not at the worst.
        tried = [item.trial.lr for item in done if item.trial.trial_key == cell.trial(item.trial.lr).trial_key
                 and not item.result["diverged"]]
        assert quality(cell, optimum) >= max(quality(cell, lr) for lr in tried) - 0.05, (cell.label, optimum, tried)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("algorithm", SEARCHES.names())
def test_early_stopping_keeps_the_better_trials_by_the_study_objective(algorithm, objective):
    spec = contract_spec(algorithm, objective=OBJECTIVES[objective],
                         early_stopping={"grace_period": 1, "reduction_factor": 2})
    cells = expand_cells(spec)
    asha = SEARCHES.get(algorithm)(spec, cells).scheduler
    cell = cells[0]
    answer = objective_response(spec.objective.metric)
    # After one epoch: a middling ε, the best, then the worst (a reduction factor of 2 keeps the better half).
    trials = [cell.trial(best_lr(cell) * factor) for factor in (0.5, 1.0, 0.25)]
    tune_trials = [SimpleNamespace(trial_id=f"t{i}", config={"trial": t.to_dict()}) for i, t in enumerate(trials)]
    for tune_trial in tune_trials:
        asha.on_trial_add(None, tune_trial)
    actions = [asha.on_trial_result(None, tune_trial, {**answer(trial), "epoch": 1})
               for tune_trial, trial in zip(tune_trials, trials)]
    assert actions == ["CONTINUE", "CONTINUE", "STOP"]
