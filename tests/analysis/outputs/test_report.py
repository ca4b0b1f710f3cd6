"""analyze() end to end on a planted table: the files, the report's statements, the figure infos."""

import dataclasses
import json

import pytest

from scalestudy.analysis import (
    TrialTable,
    analyze,
    compare_schedules,
    fit_frontier,
    fit_law,
    law_trials,
)
from scalestudy.analysis.figures.accuracy_vs_lr import accuracy_vs_lr
from scalestudy.analysis.figures.lr_opt_vs_batch_size import lr_law
from scalestudy.analysis.fits.generalization_gap import fit_gap
from scalestudy.analysis.outputs.phrases import number
from scalestudy.analysis.outputs.report import report_markdown
from scalestudy.law import ScalingLaw
from scalestudy.testing.planted import add_diagnostics, make_planted_table, stop_early


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """Every diagnostic on, and the worst trials of each law cell stopped early by the search."""
    frame = make_planted_table(1.0, 1.0, 1e-3, 1024, schedules=True, rng=7)
    frame = stop_early(add_diagnostics(frame, breakdown=1024), keep=0.5)
    return analyze(TrialTable.from_frame(frame), tmp_path_factory.mktemp("out"))


def test_writes_every_file(result):
    names = {path.name for path in result.files}
    assert {"trials.parquet", "law.json", "law.yaml", "report.md", "accuracy_vs_lr.png",
            "lr_opt_vs_batch_size.png", "accuracy_vs_noise_scale.png", "gap_vs_batch_size.png",
            "steps_to_target.png", "sharpness_vs_batch_size.png"} <= names
    for path in result.files:
        assert path.exists() and path.stat().st_size > 0
    for path in result.figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ScalingLaw.load(result.out_dir / "law.json") == ScalingLaw.load(result.out_dir / "law.yaml")


def test_law_file_content(result):
    data = json.loads((result.out_dir / "law.json").read_text())
    assert data["schema"] == "scalestudy.law/v1" and data["form"] == "lr = k * B^alpha * (1-m)^beta"
    assert data["alpha"] == pytest.approx(1.0, abs=0.05) and data["beta"] == pytest.approx(1.0, abs=0.05)
    assert data["k"] == pytest.approx(1e-3, rel=0.1)
    assert 1024 / 1.3 < data["breakdown_batch_size"] < 1024 * 1.3
    assert data["domain"] == {"batch_size": [16.0, 1024.0], "momentum": [0.0, 0.9]}
    assert data["dataset_size"] == 50_000
    assert data["fitted_on"]["cells"] == 21 and len(data["fitted_on"]["above_breakdown"]) == 6
    # g* = ε*/(1−m)·(N/B − 1) with ε* = 1e-3·B(1−m): about 1e-3·N = 50 below the breakdown.
    assert data["noise_scale_opt"]["value"] == pytest.approx(50, rel=0.05)
    assert data["gap_slope"]["value"] == pytest.approx(0.01, abs=0.003)  # planted: +1 point per doubling
    assert data["provenance"]["scalestudy_version"] and data["provenance"]["created"]
    assert len(data["cells"]) == 27
    test = data["breakdown_test"]
    assert test["outcome"] == "breakdown" and test["p_value"] <= 0.01 and test["last_batch_size_in_law"] == 1024
    assert {"ci95", "seed_range", "lr_bound", "status"} <= set(data["cells"][0])


def test_report_states_each_fit_with_its_interval(result):
    text = result.report_path.read_text()
    alpha = result.law.ci95.alpha
    assert f"| alpha | {result.law.alpha:.4g} [{alpha[0]:.4g}, {alpha[1]:.4g}] |" in text
    assert "breakdown batch size" in text and "per doubling of batch size" in text
    assert "| increase_batch | 2 | 0 |" in text and "0.420 |" in text  # update ratio to step_decay_lr
    assert "increase_batch: " in text and "with 0.42× the parameter updates" in text
    assert "![lr_opt_vs_batch_size](lr_opt_vs_batch_size.png)" in text
    assert "no schedule-curve figure" in text  # a table without histories says so
    summary = result.summary()
    assert summary.splitlines()[0].startswith("lr = ") and "breakdown batch size" in summary
    assert "×0.42 updates" in summary


def test_report_states_compute_critical_batch_size_steps_and_sharpness(result):
    text = result.report_path.read_text()
    data = json.loads((result.out_dir / "law.json").read_text())
    compute = result.compute
    assert compute.stopped >= 54 and compute.trials == result.n_trials == compute.finished + compute.diverged + \
        compute.stopped
    assert data["compute"] == {**dataclasses.asdict(compute), "notes": []}
    assert f"{compute.trials} trials: {compute.finished} finished, {compute.diverged} diverged, " \
           f"{compute.stopped} stopped early by the search. Stopped trials did not finish" in text
    assert f"| {compute.trial_epochs:,.0f} | {compute.updates:,.0f} |" in text
    assert compute.cpu_hours == pytest.approx(2 * compute.train_hours)  # planted: 1 worker × 2 CPUs, no GPU
    assert any("stopped early by the search are left out of the ε* fit" in w for w in result.warnings)
    critical = data["gradient_noise_scale"]
    assert critical["value"] == pytest.approx(512, rel=0.15) and critical["breakdown_batch_size"] == \
        data["breakdown_batch_size"]
    assert critical["ratio_to_breakdown"] == pytest.approx(critical["value"] / data["breakdown_batch_size"])
    assert f"B_simple ≈ **{number(critical['value'])} examples**" in text and "B_simple / breakdown = " in text
    assert "| B | m = 0 | m = 0.5 | m = 0.9 |" in text and "B_crit = E_min/S_min ≈ 5" in text  # planted 512
    assert "- `sharpness`: m = 0: B = 16 " in text and "larger at the largest batch size, as Keskar et al." in text
    summary = result.summary()
    assert f"critical batch size: B_simple ≈ {number(critical['value'])} examples" in summary
    assert f"compute: {compute.trials} trials ({compute.stopped} stopped early)" in summary


def test_cells_bounded_by_divergence_and_an_inconclusive_breakdown_in_the_files(tmp_path):
    """Large batch sizes diverge just above their optimum: their cells are bounded by divergence,
    in the law, and named as such in law.json, the report and the warnings. One momentum and five
    batch sizes leave the breakdown test one residual degree of freedom: inconclusive."""
    frame = make_planted_table(1.0, 1.0, 1e-3, None, noise=0.01, diverge_factor=1.3, momenta=(0.9,),
                               batch_sizes=(32, 64, 128, 256, 512), rng=4)
    result = analyze(TrialTable.from_frame(frame), tmp_path)
    data = json.loads((tmp_path / "law.json").read_text())
    bounded = [c for c in data["cells"] if c["status"] == "bounded_by_divergence"]
    assert bounded and all(c["used"] and c["lr_opt"] < c["lr_bound"] for c in bounded)
    assert data["fitted_on"]["bounded_by_divergence"] == [f"B={c['batch_size']} m=0.9" for c in bounded]
    assert data["fitted_on"]["excluded_cells"] == [] and data["fitted_on"]["cells"] == 5
    assert data["breakdown_test"]["outcome"] == "inconclusive" and data["breakdown_batch_size"] is None
    assert data["reasons"]["breakdown_batch_size"] == data["breakdown_test"]["reason"]
    text = result.report_path.read_text()
    assert "Cells bounded by divergence (in the law" in text and "Breakdown test: inconclusive, " in text
    assert f"| B=512 m=0.9 | bounded_by_divergence | {result.frontier.cells[-1].lr_opt:.4g} |" in text
    assert "breakdown batch size: inconclusive (" in result.summary()
    assert sum("bounded by divergence" in w for w in result.warnings) == len(bounded)
    assert ScalingLaw.load(tmp_path / "law.json").breakdown_test.outcome == "inconclusive"


def test_schedule_comparison():
    frame = make_planted_table(1.0, 1.0, 1e-3, None, schedules=True, batch_sizes=(64, 128, 256), rng=2)
    comparison = compare_schedules(frame)
    group = comparison.groups[0]
    assert group.section == "schedules" and group.batch_size == 128 and group.momentum == 0.9
    rows = {row.schedule: row for row in group.rows}
    assert group.rows[0].schedule == "step_decay_lr"
    assert rows["step_decay_lr"].update_ratio == 1.0
    assert rows["increase_batch"].update_ratio == pytest.approx(0.42, abs=0.01)
    assert rows["hybrid"].test_acc_sd is not None and rows["hybrid"].n_trials == 2
    assert rows["increase_batch"].acc_vs_baseline == pytest.approx(-0.002, abs=0.01)
    assert rows["constant"].matches_baseline is False  # planted 3 points worse
    assert rows["step_decay_lr"].acc_vs_baseline is None


def test_figure_infos():
    frame = law_trials(make_planted_table(1.0, 1.0, 1e-3, 1024, rng=3))[0]
    frontier = fit_frontier(frame)
    law = fit_law(list(frontier.cells))
    curves = accuracy_vs_lr(frontier)
    assert [m for m, _ in curves.panels] == [0.0, 0.5, 0.9]
    assert all(len(panel) == 9 for _, panel in curves.panels)
    assert all(curve.diverged_lrs for _, panel in curves.panels for curve in panel)
    info = lr_law(frontier, law)
    assert len(info.points) == 27 and sum(not p.used for p in info.points) == 6
    assert len(info.lines) == 3 and info.breakdown == law.breakdown.batch_size
    line = info.lines[0]
    assert line.low is not None and all(lo <= mid <= hi for lo, mid, hi in zip(line.low, line.lr, line.high))
    assert not line.fitted[-1] and line.fitted[0]  # the law is drawn as fitted only on its domain
    assert "α = 1.0" in info.title or "α = 0.99" in info.title


def test_importing_the_analysis_layer_loads_no_heavy_module():
    import subprocess
    import sys

    code = ("import sys, scalestudy.analysis, scalestudy.law; "
            "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'matplotlib', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_report_explains_the_gaps_sign_and_how_its_train_side_was_measured(result):
    """One sentence on the sign (train − test, > 0: overfitting, per doubling of B), one on the train
    metric: a planted table does not record it; the trials' train_metrics column says which."""
    text = result.report_path.read_text()
    assert ("a positive gap means the model scores better on its training data than on unseen data "
            "(overfitting); the slope is its change per doubling of B.") in text
    assert "How train accuracy was measured is not recorded" in text
    assert "generalization gap (train − test at ε*, > 0: overfitting): +0.98 points" in result.summary()
    frame = law_trials(make_planted_table(1.0, 1.0, 1e-3, 1024, rng=3))[0]
    cells = list(fit_frontier(frame).cells)
    assert fit_gap(frame, cells).train_metrics is None
    assert fit_gap(frame.assign(train_metrics="eval"), cells).train_metrics == "eval"
    mixed = frame.assign(train_metrics=["running" if b < 64 else "eval" for b in frame["batch_size"]])
    assert fit_gap(mixed, cells).train_metrics == "mixed"
    for measured, words in (("eval", "is an eval-mode pass over a fixed training subset"),
                            ("running", "trails what the final weights score, so the gap reads low"),
                            ("mixed", "measured train accuracy in both ways")):
        with_measure = dataclasses.replace(result.fits, gap=dataclasses.replace(result.fits.gap, train_metrics=measured))
        assert words in report_markdown(with_measure, result.law, [], [], [])
