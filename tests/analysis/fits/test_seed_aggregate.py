"""A cell's seeds aggregated, on hand-built frames: which runs form a cell (exact params, one study),
the mean and Student-t interval per epoch and final against numbers worked by hand, one seed (the
mean only), and diverged, errored, stopped and unfinished trials counted, never averaged."""

import math

import pandas as pd
import pytest

from scalestudy.analysis.fits.seed_aggregate import aggregate_cells, mean_intervals, seed_groups
from scalestudy.analysis.outputs.cell_runs import cell_run_metrics, cell_run_params

# t(0.975, dof) from a printed table, not from scipy.
T_975 = {1: 12.706205, 2: 4.302653, 3: 3.182446}
PARENT = "p" * 32


def run(run_id, seed, status, lr="0.1", parent=PARENT, last_epoch=3.0, **params):
    values = {"batch_size": "32", "lr": lr, "momentum": "0.9", "seed": str(seed), "schedule": "constant",
              "section": "law", "dataset_size": "512", "epochs": "3", "trial_key": f"key-{run_id}", **params}
    return {"run_id": run_id, "parent_run_id": parent, "status": status, "last_epoch": last_epoch,
            **{f"params.{k}": v for k, v in values.items()}}


# Cell A (lr 0.1): seeds 0-2 ok, 3 diverged, 4 errored, 5 stopped after 2 of 3 epochs, 6 still running.
# Cell B (lr 0.2): one seed. Cell C: ε 0.1 + one ulp, another cell under the same printed name.
RUNS = pd.DataFrame([
    run("a0", 0, "ok"), run("a1", 1, "ok"), run("a2", 2, "ok"), run("a3", 3, "diverged", last_epoch=1.0),
    run("a4", 4, "error", last_epoch=1.0), run("a5", 5, "stopped", last_epoch=2.0),
    run("a6", 6, "unfinished", last_epoch=2.0),
    run("b0", 0, "ok", lr="0.2"), run("c0", 0, "ok", lr=repr(0.1 + 2**-56)),
])
TEST_ACC = {"a0": [0.5, 0.6, 0.7], "a1": [0.6, 0.7, 0.9], "a2": [0.7, 0.8, 0.8], "a3": [99.0],
            "a4": [42.0], "a5": [0.4, 0.5], "a6": [7.0, 7.0], "b0": [0.3, 0.35, 0.4], "c0": [0.1, 0.1, 0.1]}


def points():
    rows = [(run_id, "test_acc", epoch, value) for run_id, values in TEST_ACC.items()
            for epoch, value in enumerate(values, 1)]
    rows += [(run_id, "epoch", epoch, float(epoch)) for run_id, values in TEST_ACC.items()
             for epoch in range(1, len(values) + 1)]
    rows += [("a0", "sharpness", 3, 10.0), ("a1", "sharpness", 3, 14.0)]  # logged at the final epoch only
    rows += [("a0", "noise_scale", 1, math.nan), ("a3", "diverged", 1, 1.0)]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])


def by_name(groups):
    return {group.params["lr"]: group for group in groups}


def test_a_cell_is_everything_but_the_seed_in_exact_values():
    groups = seed_groups(RUNS)
    assert len(groups) == 3
    a, b = by_name(groups)["0.1"], by_name(groups)["0.2"]
    c = by_name(groups)[repr(0.1 + 2**-56)]
    assert a.name == b.name.replace("0.2", "0.1") == c.name == "B=32 lr=0.1 m=0.9 constant"  # names are for people
    assert len({a.key, c.key}) == 2  # identity is exact
    assert a.seeds == (0, 1, 2, 5) and a.averaged_runs == ("a0", "a1", "a2", "a5")
    assert a.final_runs == ("a0", "a1", "a2")
    assert (a.n_diverged, a.n_failed, a.n_stopped, a.n_unfinished) == (1, 1, 1, 1)
    assert "seed" not in a.params and "trial_key" not in a.params and a.params["epochs"] == "3"
    assert a.parent_run_id == PARENT and a.key.startswith("law-B32-lr0.1-m0.9-constant-")


def test_the_mean_and_t_interval_per_epoch_match_the_hand_computation():
    aggregates = {agg.group.params["lr"]: agg for agg in aggregate_cells(seed_groups(RUNS), points())}
    curve = aggregates["0.1"].per_epoch.set_index(["metric", "step"])
    assert set(curve.index.get_level_values("metric")) == {"test_acc", "sharpness"}  # not epoch, nor all-NaN ones
    # Epoch 1: seeds 0, 1, 2 and the stopped 5: 0.5, 0.6, 0.7, 0.4. Mean 0.55, s² = 0.05/3.
    first = curve.loc[("test_acc", 1)]
    half = T_975[3] * math.sqrt(0.05 / 3) / 2
    assert first["n"] == 4 and first["mean"] == pytest.approx(0.55)
    assert (first["lo"], first["hi"]) == pytest.approx((0.55 - half, 0.55 + half), rel=1e-6)
    assert half == pytest.approx(0.205426, abs=1e-6)
    # Epoch 3: the stopped seed is gone: 0.7, 0.9, 0.8. Mean 0.8, s = 0.1.
    third = curve.loc[("test_acc", 3)]
    assert third["n"] == 3 and third["mean"] == pytest.approx(0.8)
    assert (third["lo"], third["hi"]) == pytest.approx((0.8 - 0.248414, 0.8 + 0.248414), abs=1e-6)
    assert T_975[2] * 0.1 / math.sqrt(3) == pytest.approx(0.248414, abs=1e-6)
    # Diverged (99), errored (42) and unfinished (7) values never enter a mean.
    assert curve.loc["test_acc", "hi"].max() < 2 and curve.loc["test_acc", "n"].max() == 4


def test_final_values_average_the_trials_that_ran_their_course():
    aggregate = next(agg for agg in aggregate_cells(seed_groups(RUNS), points()) if agg.group.params["lr"] == "0.1")
    final = aggregate.final.set_index("metric")
    # Not the stopped trial's 0.5.
    assert final.loc["test_acc", "n"] == 3 and final.loc["test_acc", "mean"] == pytest.approx(0.8)
    # sharpness: 10 and 14 (seed 2 did not log it). Mean 12, s = 2·√2, half = t(1)·s/√2 = 2·t(1).
    assert final.loc["sharpness", "n"] == 2 and final.loc["sharpness", "mean"] == pytest.approx(12.0)
    assert final.loc["sharpness", "hi"] == pytest.approx(12.0 + 2 * T_975[1], rel=1e-6)


def test_one_seed_gives_the_mean_only():
    aggregate = next(agg for agg in aggregate_cells(seed_groups(RUNS), points()) if agg.group.params["lr"] == "0.2")
    assert aggregate.group.seeds == (0,)
    assert list(aggregate.per_epoch["mean"]) == pytest.approx([0.3, 0.35, 0.4])
    assert aggregate.per_epoch["lo"].isna().all() and aggregate.per_epoch["hi"].isna().all()
    names = {name for name, _, _ in cell_run_metrics(aggregate)}
    assert {"test_acc_mean", "final/test_acc_mean", "n_seeds", "n_diverged", "n_failed"} <= names
    assert not [name for name in names if name.endswith(("_lo", "_hi"))]


def test_the_cell_run_holds_every_statistic_and_the_counts():
    aggregate = next(agg for agg in aggregate_cells(seed_groups(RUNS), points()) if agg.group.params["lr"] == "0.1")
    metrics = {(name, step): value for name, value, step in cell_run_metrics(aggregate)}
    assert metrics[("test_acc_mean", 3)] == pytest.approx(0.8)
    assert metrics[("test_acc_hi", 3)] == pytest.approx(1.048414)
    assert metrics[("final/test_acc_lo", 0)] == pytest.approx(0.551586, abs=1e-6)
    assert (metrics[("n_seeds", 0)], metrics[("n_diverged", 0)], metrics[("n_failed", 0)]) == (4, 1, 1)
    assert (metrics[("n_stopped", 0)], metrics[("n_unfinished", 0)]) == (1, 1)
    params = cell_run_params(aggregate.group)
    assert params["n_seeds"] == "4" and params["seeds"] == "0,1,2,5" and params["lr"] == "0.1"


def test_a_cell_of_diverged_trials_only_is_counted_with_no_curve():
    frame = pd.DataFrame([run("d0", 0, "diverged", lr="9.0"), run("d1", 1, "diverged", lr="9.0")])
    [aggregate] = aggregate_cells(seed_groups(frame), points())
    assert aggregate.group.seeds == () and aggregate.group.n_diverged == 2
    assert aggregate.per_epoch.empty and aggregate.final.empty
    assert dict((name, value) for name, value, _ in cell_run_metrics(aggregate))["n_diverged"] == 2


def test_cells_of_two_studies_a_repeated_seed_and_a_varying_n():
    frame = pd.DataFrame([
        run("x0", 0, "error", last_epoch=1.0), run("x1", 0, "ok"),  # seed 0 again: its finished run counts
        run("y0", 0, "ok", parent="q" * 32),  # the same cell in another study: a cell of its own
        run("z0", 0, "ok", dataset_size="1024"),  # N varies in the first study: names show it
    ])
    groups = seed_groups(frame)
    assert len(groups) == 3
    first = next(g for g in groups if g.parent_run_id == PARENT and g.params["dataset_size"] == "512")
    assert first.averaged_runs == ("x1",) and first.n_failed == 0
    assert first.name == "B=32 lr=0.1 m=0.9 N=512 constant" and "-N512-" in first.key
    other = next(g for g in groups if g.parent_run_id == "q" * 32)
    assert other.name == "B=32 lr=0.1 m=0.9 constant"


def test_the_digest_follows_what_the_run_holds():
    before = {g.key: g.digest for g in seed_groups(RUNS)}
    assert before == {g.key: g.digest for g in seed_groups(RUNS.sample(frac=1, random_state=0))}  # order-free
    finished = RUNS.assign(status=RUNS["status"].replace("unfinished", "ok"), last_epoch=RUNS["last_epoch"])
    after = {g.key: g.digest for g in seed_groups(finished)}
    changed = [key for key in before if before[key] != after[key]]
    assert len(changed) == 1 and changed[0].startswith("law-B32-lr0.1-m0.9-constant-")


def test_mean_intervals_on_a_plain_frame():
    frame = pd.DataFrame({"g": ["u", "u", "v"], "value": [1.0, 3.0, 5.0]})
    stats = mean_intervals(frame, ["g"]).set_index("g")
    assert stats.loc["u", "mean"] == 2.0 and stats.loc["u", "hi"] == pytest.approx(2.0 + T_975[1], rel=1e-6)
    assert stats.loc["v", "n"] == 1 and math.isnan(stats.loc["v", "lo"])
