"""Steps to target in the analysis: censored crossings (bounds, not counts), the epoch-grid warning,
and B_simple read at the target crossing with its interval, each against a closed-form answer."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scalestudy.analysis import TrialTable, analyze, fit_steps_to_target
from scalestudy.analysis.figures.steps_to_target import steps_to_target
from scalestudy.analysis.fits.critical_batch import END_OF_TRAINING
from scalestudy.analysis.fits.gradient_noise_at_target import noise_at_target
from scalestudy.testing.planted import PlantedDiagnostics, add_diagnostics, make_planted_table

FULL = {"momentum": 0.9, "dataset_size": 4096, "test_acc": 0.8, "train_acc": 0.85, "diverged": False, "status": "ok"}


def trial(batch_size, lr, seed, updates=math.nan, at_most=math.nan, noise=math.nan):
    return {**FULL, "batch_size": batch_size, "lr": lr, "seed": seed, "updates_to_target": updates,
            "examples_to_target": updates * batch_size, "updates_to_target_at_most": at_most,
            "examples_to_target_at_most": at_most * batch_size, "gradient_noise_scale_at_target": noise}


def table(rows):
    return TrialTable.from_frame(pd.DataFrame(rows).assign(target_accuracy=0.7)).frame


def censoring_rows():
    """Two ε × two seeds per B. A censored trial's seed mean lies in [mean with it at 0, mean with it
    at its bound]; the cell's fewest updates in [min of lower ends, min of upper ends]."""
    return [
        # B = 32: ε 0.2 censored in both seeds (≤ 50): fewest ≤ 50.
        trial(32, 0.1, 0, 100.0), trial(32, 0.1, 1, 110.0), trial(32, 0.2, 0, at_most=50.0),
        trial(32, 0.2, 1, at_most=50.0),
        # B = 64: ε 0.2 in [35, 47.5] against ε 0.1's 60: fewest ≤ 47.5, censored.
        trial(64, 0.1, 0, 60.0), trial(64, 0.1, 1, 60.0), trial(64, 0.2, 0, at_most=25.0), trial(64, 0.2, 1, 70.0),
        # B = 128: ε 0.2 in [40, 46] cannot beat ε 0.1's 35.625: exactly that.
        trial(128, 0.1, 0, 35.625), trial(128, 0.1, 1, 35.625), trial(128, 0.2, 0, at_most=12.0),
        trial(128, 0.2, 1, 80.0),
    ] + [trial(b, 0.1, seed, 20 * (1 + 100 / b)) for b in (256, 512, 1024) for seed in (0, 1)]  # B ≥ 128: S(B) =
    # 20·(1 + 100/B) exactly (McCandlish et al. 2018, eq. 2.11)


def test_a_censored_cell_holds_its_bound_and_stays_out_of_the_fit():
    steps = fit_steps_to_target(table(censoring_rows()))
    line = steps.lines[0]
    assert [(p.batch_size, p.lr, p.updates, p.censored) for p in line.points[:3]] == [
        (32, 0.2, 50.0, True), (64, 0.2, 47.5, True), (128, 0.1, 35.625, False)]
    assert line.points[0].examples == 50.0 * 32 and steps.censored
    assert line.transition.batch_sizes == (128, 256, 512, 1024)  # the measured points only
    assert line.transition.value == pytest.approx(100, rel=1e-6)  # the censored bounds would have pulled it
    assert any("B = 32 (≤ 50), B = 64 (≤ 47.5)" in w and "left out of the S(B) fit" in w for w in steps.warnings)
    curve = steps_to_target(steps).curves[0]
    assert curve.censored == (True, True, False, False, False, False)
    assert curve.perfect_updates[2] == 35.625  # perfect scaling through the smallest B with a count


def test_tables_from_before_censoring_still_analyse():
    old = table(censoring_rows()).drop(columns=["updates_to_target_at_most", "examples_to_target_at_most",
                                                "gradient_noise_scale_at_target"])
    steps = fit_steps_to_target(old)
    line = steps.lines[0]
    assert not steps.censored and line.noise is None
    assert [p.lr for p in line.points[:3]] == [0.1, 0.1, 0.1]  # ε 0.2 did not reach it in every trial: as before
    only_bounds = table(censoring_rows()).drop(columns=["updates_to_target", "examples_to_target"])
    assert fit_steps_to_target(only_bounds).lines[0].points[0].censored


def test_counts_on_the_epoch_grid_are_warned_about():
    """REPRODUCTIONS' N = 4000 row: 250, 125, 62, 31, 15 updates are one epoch (N // B) at each B."""
    epochs = [trial(b, 0.1, seed, 4000 // b) for b in (16, 32, 64, 128, 256) for seed in (0, 1)]
    steps = fit_steps_to_target(table(epochs).assign(dataset_size=4000))
    assert [p.updates for p in steps.lines[0].points] == [250, 125, 62, 31, 15]
    assert any("every count is a whole number of epochs (250, 125, 62, 31, 15 updates" in w for w in steps.warnings)
    inside = [trial(b, 0.1, seed, 4000 // b * 0.37) for b in (16, 32, 64, 128, 256) for seed in (0, 1)]
    assert fit_steps_to_target(table(inside).assign(dataset_size=4000)).warnings == ()


def test_b_simple_at_the_target_is_a_geometric_mean_with_a_student_t_interval():
    """Readings 100 and 400: the geometric mean 200, and exp(ln 200 ± t₀.₉₇₅(1)·sd/√2) with
    sd = ln 4/√2 the sample sd of the two logarithms."""
    estimate = noise_at_target([32, 64, 128], [100.0, 400.0, math.nan])
    half = stats.t.ppf(0.975, 1) * (math.log(4) / math.sqrt(2)) / math.sqrt(2)
    assert estimate.value == pytest.approx(200) and estimate.batch_sizes == (32, 64)
    assert estimate.ci95 == pytest.approx((200 * math.exp(-half), 200 * math.exp(half)))
    assert noise_at_target([32], [300.0]).ci95 is None and noise_at_target([32], [-1.0]).value is None


def test_the_b_simple_interval_holds_95_percent_of_lognormal_readings():
    rng = np.random.default_rng(3)
    runs, batch_sizes = 1000, [16, 32, 64, 128, 256, 512]
    held = sum(low <= 300 <= high for low, high in (
        noise_at_target(batch_sizes, 300 * np.exp(rng.normal(0, 0.4, 6))).ci95 for _ in range(runs)))
    assert 0.93 <= held / runs <= 0.97


def test_steps_line_reads_b_simple_at_the_crossing_of_its_fastest_lr():
    rows = [trial(b, lr, seed, (20 if lr == 0.1 else 40) * (1 + 100 / b), noise=(300 if lr == 0.1 else 900) * f)
            for b in (32, 64, 128) for lr in (0.1, 0.2) for seed, f in ((0, 0.5), (1, 2.0))]
    noise = fit_steps_to_target(table(rows)).lines[0].noise
    assert noise.readings == pytest.approx((300, 300, 300))  # seed geometric mean of 150 and 600, at ε 0.1
    assert noise.value == pytest.approx(300) and noise.ci95 == pytest.approx((300, 300))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Steps planted with B_crit = 512 at m = 0.9; B ≥ 2048 there crossed before their first evaluation
    (censored at their planted counts); B_simple at the crossing planted at 300 (×e^N(0, 0.2²)), at
    the end of training at 480."""
    law = {"alpha": 1.0, "beta": 1.0, "k": 1e-3, "breakdown": 1024}
    diagnostics = PlantedDiagnostics(noise_scale=480.0, critical_batch=512.0, steps_scatter=0.1, steps_width=3.0)
    frame = add_diagnostics(make_planted_table(**law, rng=5), diagnostics, **law, rng=6)
    early = (frame["momentum"] == 0.9) & (frame["batch_size"] >= 2048)
    frame["updates_to_target_at_most"] = frame["updates_to_target"].where(early)
    frame["examples_to_target_at_most"] = frame["examples_to_target"].where(early)
    frame.loc[early, ["updates_to_target", "examples_to_target"]] = np.nan
    frame["gradient_noise_scale_at_target"] = 300 * np.exp(np.random.default_rng(7).normal(0, 0.2, len(frame)))
    return frame, analyze(TrialTable.from_frame(frame), tmp_path_factory.mktemp("out"))


def test_the_report_shows_censored_points_and_b_simple_at_the_crossing(planted):
    frame, result = planted
    text = result.report_path.read_text()
    headline = result.fits.critical_sizes.steps_line
    assert headline.momentum == 0.9 and [p.batch_size for p in headline.points if p.censored] == [2048, 4096]
    assert headline.transition.ci95[0] <= 512 <= headline.transition.ci95[1]
    rows = [row for row in text.splitlines() if row.startswith(("| 2048 |", "| 4096 |"))]
    assert len(rows) == 2 and all(row.endswith(" |") and "| ≤ " in row for row in rows)
    assert "≤: censored, reached before the first evaluation" in text
    assert any("B = 2048 (≤ " in w and "censored" in w for w in result.warnings)
    noise = result.fits.critical_sizes.gradient_noise
    assert noise.ci95[0] <= 300 <= noise.ci95[1] and noise.value == pytest.approx(300, rel=0.15)
    assert "B_simple at the target crossing, geometric mean over the batch sizes of m = 0.9" in text
    assert result.law.critical_batch_size.gradient_noise.value == pytest.approx(noise.value)
    assert result.fits.critical_batch.value == pytest.approx(480, rel=0.15)  # the end-of-training median, beside
    assert (result.out_dir / "steps_to_target.png").stat().st_size > 0


def test_without_the_reading_at_the_crossing_b_simple_falls_back_to_the_end_of_training(planted):
    frame, _ = planted
    from scalestudy.analysis import fit_study

    fits = fit_study(TrialTable.from_frame(frame.drop(columns=["gradient_noise_scale_at_target"])))
    noise = fits.critical_sizes.gradient_noise
    assert noise.source == END_OF_TRAINING and noise.value == pytest.approx(fits.critical_batch.value)
    assert steps_to_target(fits.steps, fits.critical_batch).noise_read_at == "end of training"
