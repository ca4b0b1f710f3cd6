"""``scalestudy check-law``: a law fitted at small B, checked on a second study at larger B, flags
the cells past a planted breakdown and passes where the law holds; files, exit codes, bad input; the
check's power beside its verdict; a check study of another objective, and a law too wide to check,
refused; the check's run in MLflow (real SQLite store)."""

import json

import pytest

from scalestudy.analysis import TrialTable, fit_study
from scalestudy.analysis.fits.law_check import check_law
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.testing.planted import make_planted_table
from cli_in_process import run

TRUTH = {"alpha": 1.0, "beta": 1.0, "k": 1e-3}
CHECK = {"batch_sizes": (256, 512, 1024, 2048, 4096), "momenta": (0.9,), "seeds": (0, 1), "centre_on_rule": True,
         "lr_points": 9}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A law fitted on B = 16-256 (the planted breakdown at 512 lies beyond it), and two check studies
    at B = 256-4096 whose lr grids are centred on the law: one with that breakdown, one without."""
    folder = tmp_path_factory.mktemp("check")
    small = make_planted_table(**TRUTH, breakdown=512, batch_sizes=(16, 32, 64, 128, 256), momenta=(0.0, 0.9), rng=1)
    law = build_law(fit_study(small))
    assert law.breakdown_batch_size is None and law.domain.batch_size == (16, 256)
    law.save(folder / "law.json")
    for name, breakdown in (("broken", 512), ("holds", None)):
        frame = make_planted_table(**TRUTH, breakdown=breakdown, **CHECK, rng=2)
        TrialTable.from_frame(frame).to_parquet(folder / f"{name}.parquet")
    return folder


def test_a_law_applied_past_its_breakdown_fails_there(files):
    code, out, err = run(["check-law", "--law", files / "law.json", "--runs", files / "broken.parquet",
                          "--out", files / "broken"])
    assert code == 1, err
    data = json.loads((files / "broken" / "check.json").read_text())
    outcomes = {cell["batch_size"]: cell["outcome"] for cell in data["cells"]}
    # At 1024 ε* is 2× below the law: one step of the ×2 grid, inside the cell's own 95 % set (the
    # bracket between the best lr's neighbours), so the check may not see it; 4× and 8× it must.
    assert outcomes[256] == outcomes[512] == "pass" and outcomes[2048] == outcomes[4096] == "fail"
    assert data["schema"] == "scalestudy.check/v1" and data["passed"] is False and data["tested"] == 5
    assert data["cell_level"] == pytest.approx(0.05 / 5)
    far = next(cell for cell in data["cells"] if cell["batch_size"] == 4096)
    assert far["ratio"] == pytest.approx(1 / 8, rel=0.05)  # ε* stopped at B = 512: 8× below the law at 4096
    assert far["predicted_ci95"][0] > far["measured_ci95"][1] and "above the largest fitted batch size" in \
        far["extrapolation"]
    assert "the law does not transfer to B=" in out and "| B=4096 m=0.9 N=50000 | **fail** |" in out
    assert (files / "broken" / "check.png").read_bytes()[:4] == b"\x89PNG"
    assert "**Verdict: the law does not transfer to B=" in (files / "broken" / "check.md").read_text()


def test_where_the_law_holds_every_cell_passes(files):
    code, out, err = run(["check-law", "--law", files / "law.json", "--runs", files / "holds.parquet",
                          "--out", files / "holds"])
    assert code == 0, err
    assert "the law holds on every cell tested (5 pass" in out


def test_an_edge_cell_far_past_the_breakdown_fails_by_its_bound(files):
    """A grid of 7 lrs around the law at B = 4096, whose smallest is near the true ε* (8× below the law)
    and whose lrs from 8ε* on diverge: accuracy falls from the smallest lr on, and the law's interval
    lies wholly above the next one."""
    from scalestudy.law import ScalingLaw

    frame = make_planted_table(**TRUTH, breakdown=512, **{**CHECK, "lr_points": 7, "batch_sizes": (512, 4096)},
                               diverge_factor=8.0, rng=3)
    cells = {c.batch_size: c for c in check_law(ScalingLaw.load(files / "law.json"), frame).cells}
    assert cells[4096].status == "edge_low" and cells[4096].outcome == "fail"
    assert "ε* is below" in cells[4096].reason and cells[512].outcome == "pass"


def test_bad_input_is_one_line_and_leaves_nothing(files, tmp_path):
    out = tmp_path / "out"
    for argv, message in (
            (["--law", tmp_path / "missing.json", "--runs", files / "holds.parquet"], "cannot read law file"),
            (["--law", files / "law.json", "--runs", tmp_path / "missing.parquet"], "missing.parquet"),
            (["--law", files / "law.json"], "one of the arguments --experiment --runs is required")):
        try:
            code, _, err = run(["check-law", *argv, "--out", out])
        except SystemExit as exit_:  # argparse
            code, err = exit_.code, message
        assert code == 2 and message in err, err
        assert not out.exists()
    untestable = make_planted_table(**TRUTH, batch_sizes=(256,), momenta=(0.9,), lr_points=1, rng=4)
    TrialTable.from_frame(untestable).to_parquet(tmp_path / "thin.parquet")
    code, _, err = run(["check-law", "--law", files / "law.json", "--runs", tmp_path / "thin.parquet", "--out", out])
    assert code == 2 and "no cell of the check study can be tested" in err and not out.exists()


def test_the_verdict_says_how_small_a_deviation_the_check_could_have_detected(files):
    """Each measured cell's power is the smallest factor between ε̂ and the law's ε* that fails it:
    exactly the cells that deviate by at least theirs fail; the verdict names the smallest."""
    code, out, _ = run(["check-law", "--law", files / "law.json", "--runs", files / "holds.parquet",
                        "--out", files / "holds_power"])
    data = json.loads((files / "holds_power" / "check.json").read_text())
    factor = data["power"]["detectable_factor"]
    assert code == 0 and 1 < factor == min(cell["detectable"] for cell in data["cells"])
    assert (f"the law holds on every cell tested (5 pass; a cell fails at p ≤ 0.01, 0.05 over the 5 cells tested), "
            f"but it could not have detected a deviation of ε* smaller than ×{factor:.3g} (its most sensitive cell, "
            f"{data['power']['cell']})") in out
    assert data["verdict"] in out and f"| ×{data['cells'][0]['detectable']:.3g} |" in out
    broken = json.loads((files / "broken" / "check.json").read_text()) if (files / "broken").exists() else None
    if broken is None:
        run(["check-law", "--law", files / "law.json", "--runs", files / "broken.parquet", "--out", files / "broken"])
        broken = json.loads((files / "broken" / "check.json").read_text())
    measured = [cell for cell in broken["cells"] if cell["detectable"] is not None]
    assert len(measured) == 5 and "the smallest deviation of ε* it could detect was ×" in broken["verdict"]
    for cell in measured:
        deviation = max(cell["ratio"], 1 / cell["ratio"])
        assert (deviation >= cell["detectable"]) == (cell["outcome"] == "fail"), cell


def test_a_check_study_of_another_objective_is_refused(files, tmp_path):
    from scalestudy.analysis import load_trials_from_parquet

    frame = load_trials_from_parquet(files / "holds.parquet").frame
    frame = frame.assign(objective=frame["test_loss"], objective_metric="test_loss", objective_direction="min")
    TrialTable.from_frame(frame).to_parquet(tmp_path / "loss.parquet")
    code, out, err = run(["check-law", "--law", files / "law.json", "--runs", tmp_path / "loss.parquet",
                          "--out", tmp_path / "out"])
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert err.startswith("error: the law was fitted on test_acc (maximised) and the check study's objective is "
                          "test_loss (minimised): the ε* of one is not the ε* of the other")


def test_a_law_too_wide_at_the_check_cells_is_refused_unless_forced_and_then_says_what_it_could_not_see(files,
                                                                                                       tmp_path):
    """A law of 3 cells (one residual degree of freedom) checked at B = 256-4096: its interval there
    reaches far more than ×4, so a check could not fail; forced, the verdict says how blind it was."""
    wide = make_planted_table(**TRUTH, batch_sizes=(64, 128, 256), momenta=(0.9,), lr_points=5, rng=5)
    build_law(fit_study(wide)).save(tmp_path / "wide.json")
    argv = ["check-law", "--law", tmp_path / "wide.json", "--runs", files / "holds.parquet", "--out", tmp_path / "out"]
    code, _, err = run(argv)
    assert code == 2 and "the law's 95 % interval of ε* at B=" in err and "--max-interval-ratio" in err
    assert not (tmp_path / "out").exists() and "--max-extrapolation" not in err  # checking far out is the point
    code, out, err = run([*argv, "--force"])
    data = json.loads((tmp_path / "out" / "check.json").read_text())
    assert code == 0 and err.startswith("warning: FORCED (--force)")
    assert data["power"]["detectable_factor"] > 10 and "but it could not have detected a deviation" in out
    assert any(w.startswith("FORCED (--force)") for w in data["warnings"])


def test_the_check_is_logged_to_mlflow_under_the_law_s_run_or_else_the_checked_study_s(files, tmp_path):
    """Real SQLite MLflow: a law whose file records its study's parent run gets a ``check`` run under it
    (verdict, power, counts; check.json with every cell as an artifact); a law that records none, checked
    on a table read from MLflow, gets it under the checked study's parent run."""
    from mlflow.tracking import MlflowClient

    from scalestudy.law import ScalingLaw

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)

    def study(name):
        experiment = client.create_experiment(name, artifact_location=(tmp_path / name).as_uri())
        return experiment, client.create_run(experiment, run_name=f"study {name}",
                                             tags={"scalestudy.role": "study"}).info.run_id

    law_experiment, law_parent = study("small")
    data = ScalingLaw.load(files / "law.json").to_dict()
    data["provenance"].update(experiment="small", tracking_uri=uri, parent_run_id=law_parent)
    ScalingLaw.from_dict(data).save(tmp_path / "law.json")
    code, out, err = run(["check-law", "--law", tmp_path / "law.json", "--runs", files / "holds.parquet",
                          "--out", tmp_path / "out"])
    assert code == 0, err
    (logged,) = client.search_runs([law_experiment], "tags.`scalestudy.role` = 'check'")
    assert f"MLflow: check run {logged.info.run_id} under the law's study's run {law_parent}" in out
    check = json.loads((tmp_path / "out" / "check.json").read_text())
    assert logged.data.tags["mlflow.parentRunId"] == law_parent
    assert logged.data.tags["scalestudy.check.verdict"] == check["verdict"]
    assert logged.data.metrics["check.passed"] == 1.0 and logged.data.metrics["check.pass"] == 5
    assert logged.data.metrics["check.detectable_factor"] == pytest.approx(check["power"]["detectable_factor"])
    assert {a.path for a in client.list_artifacts(logged.info.run_id)} == {"check.json", "check.md", "check.png"}
    artifact = client.download_artifacts(logged.info.run_id, "check.json", str(tmp_path))
    assert [cell["outcome"] for cell in json.loads(open(artifact).read())["cells"]] == ["pass"] * 5
    # The law records no run: under the checked study's parent run (the MLflow origin its table keeps).
    checked_experiment, checked_parent = study("large")
    frame = TrialTable.from_frame(make_planted_table(**TRUTH, breakdown=None, **CHECK, rng=2)).frame
    TrialTable.from_frame(frame, {"source": "mlflow", "tracking_uri": uri, "experiment_id": checked_experiment,
                                  "parent_run_id": checked_parent}).to_parquet(tmp_path / "large.parquet")
    code, out, err = run(["check-law", "--law", files / "law.json", "--runs", tmp_path / "large.parquet",
                          "--out", tmp_path / "out2"])
    (logged,) = client.search_runs([checked_experiment], "tags.`scalestudy.role` = 'check'")
    assert code == 0 and f"under the checked study's run {checked_parent}" in out
    assert logged.data.tags["mlflow.parentRunId"] == checked_parent
    code, out, _ = run(["check-law", "--law", files / "law.json", "--runs", files / "holds.parquet",
                        "--out", tmp_path / "out3"])
    assert code == 0 and "MLflow: not logged (neither the law file nor the check study records an MLflow run)" in out
