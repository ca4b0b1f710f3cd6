"""Bad or thin data: a one-line AnalysisError, or a law whose unfittable fields are null with a
reason; never a traceback, never an invented number."""

import json

import pytest

from scalestudy.analysis import (
    AnalysisError,
    TrialTable,
    analyze,
    load_trials_from_parquet,
)
from scalestudy.law import PredictionError, ScalingLaw
from scalestudy.testing.planted import make_planted_table


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture(scope="module")
def planted():
    return make_planted_table(1.0, 1.0, 1e-3, None, batch_sizes=(32, 64, 128, 256, 512), momenta=(0.0, 0.9),
                              lr_points=7)


def write(frame, tmp_path, name="trials.parquet"):
    path = tmp_path / name
    frame.to_parquet(path)
    return path


@pytest.mark.parametrize("column", ["lr", "diverged", "test_acc"])
def test_missing_column_is_named(planted, tmp_path, column):
    with pytest.raises(AnalysisError) as error:
        load_trials_from_parquet(write(planted.drop(columns=[column]), tmp_path))
    assert f"missing required column '{column}'" in one_line(error)


def test_empty_table_and_missing_file(planted, tmp_path):
    with pytest.raises(AnalysisError, match="no trials") as error:
        load_trials_from_parquet(write(planted.head(0), tmp_path))
    one_line(error)
    with pytest.raises(AnalysisError, match="no trial table at"):
        load_trials_from_parquet(tmp_path / "nope.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(AnalysisError, match="not a readable Parquet file"):
        load_trials_from_parquet(tmp_path / "junk.parquet")


@pytest.mark.parametrize("column, value, message", [
    ("lr", "fast", "column 'lr' must be numeric"),
    ("momentum", 1.5, "column 'momentum' must be in [0, 1)"),
    ("batch_size", 0, "column 'batch_size' must be > 0"),
    ("diverged", "maybe", "column 'diverged' must be boolean"),
    ("seed", 0.5, "column 'seed' must hold whole numbers"),
])
def test_bad_values_are_one_line_errors(planted, column, value, message):
    frame = planted.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    with pytest.raises(AnalysisError) as error:
        TrialTable.from_frame(frame)
    assert message in one_line(error)


def test_every_trial_diverged(planted, tmp_path):
    frame = planted.assign(diverged=True)
    with pytest.raises(AnalysisError, match="every trial diverged") as error:
        analyze(TrialTable.from_frame(frame), tmp_path)
    one_line(error)


def test_several_dataset_sizes_fit_gamma(planted, tmp_path):
    """Issue 14: trials over several dataset sizes are one study with a dataset-size axis (they were
    refused before); here ε* does not depend on N, and the law's γ says so."""
    frame = planted.copy()
    frame.loc[frame["batch_size"] == 64, "dataset_size"] = 1234
    result = analyze(TrialTable.from_frame(frame), tmp_path)
    low, high = result.law.ci95.gamma
    assert low <= 0.0 <= high and result.law.dataset_size is None
    assert any("the trials span dataset sizes 1234, 50000" in w for w in result.warnings)


def test_single_batch_size_leaves_alpha_and_k_null(planted, tmp_path):
    result = analyze(TrialTable.from_frame(planted[planted["batch_size"] == 128]), tmp_path)
    law = ScalingLaw.load(tmp_path / "law.json")
    assert law.alpha is None and law.k is None and law.ci95.alpha is None
    assert law.reasons["alpha"] == "single batch size (B=128)"
    assert law.beta == pytest.approx(1.0, abs=0.1)  # two momenta still give beta
    assert law.breakdown_batch_size is None and "batch sizes" in law.reasons["breakdown_batch_size"]
    with pytest.raises(PredictionError, match="single batch size"):
        law.predict(batch_size=256, momentum=0.9)
    assert "not fitted (single batch size (B=128))" in result.summary()
    assert "single batch size" in result.report_path.read_text()


def test_single_momentum_leaves_beta_null(planted, tmp_path):
    analyze(TrialTable.from_frame(planted[planted["momentum"] == 0.9]), tmp_path)
    data = json.loads((tmp_path / "law.json").read_text())
    assert data["beta"] is None and data["reasons"]["beta"] == "single momentum (m=0.9)"
    assert data["alpha"] == pytest.approx(1.0, abs=0.05)
    law = ScalingLaw.load(tmp_path / "law.yaml")
    assert law.predict(batch_size=256).lr == pytest.approx(1e-3 * 256 * 0.1, rel=0.1)
    # No diagnostics logged: null with a reason, and the report says so.
    assert data["gradient_noise_scale"] is None
    assert data["reasons"]["gradient_noise_scale"].startswith("no gradient_noise_scale in the trial table")
    text = (tmp_path / "report.md").read_text()
    assert "Gradient noise scale: not available (no gradient_noise_scale in the trial table" in text
    assert "Not available (no updates_to_target in the trial table" in text
    assert "Not available (no sharpness in the trial table" in text
    assert data["compute"]["trials"] == 70 and data["compute"]["cpu_hours"] is None


def test_single_cell_gives_an_all_null_law(planted, tmp_path):
    cell = planted[(planted["batch_size"] == 128) & (planted["momentum"] == 0.0)]
    result = analyze(TrialTable.from_frame(cell), tmp_path)
    assert (result.law.k, result.law.alpha, result.law.beta) == (None, None, None)
    assert result.law.noise_scale_opt.ci95 is None  # one cell: a value, no interval
    assert result.gap.vs_batch is None and result.gap.reason


def test_no_interior_optimum_anywhere(planted, tmp_path):
    low = planted[planted["lr"] < 0.9 * 1e-3 * planted["batch_size"] * (1 - planted["momentum"])]
    result = analyze(TrialTable.from_frame(low), tmp_path)
    assert result.law.alpha is None and "interior optimum" in result.law.reasons["alpha"]
    assert len([w for w in result.warnings if "left out of the law" in w]) == 10
    assert not (tmp_path / "lr_opt_vs_batch_size.png").exists()


def test_two_cells_fit_without_intervals(planted, tmp_path):
    two = planted[(planted["momentum"] == 0.0) & planted["batch_size"].isin([64, 256])]
    law = analyze(TrialTable.from_frame(two), tmp_path).law
    assert law.alpha == pytest.approx(1.0, abs=0.05)
    assert law.ci95.alpha is None and "no interval" in law.reasons["ci95.alpha"]


def test_only_schedule_trials(tmp_path):
    frame = make_planted_table(1.0, 1.0, 1e-3, None, schedules=True)
    frame = frame[frame["section"] == "schedules"]
    frame = frame[frame["schedule"] != "constant"]
    result = analyze(TrialTable.from_frame(frame), tmp_path)
    assert result.law.alpha is None
    assert any("no constant-schedule trials" in w for w in result.warnings)
    assert next(r.schedule for r in result.schedules.groups[0].rows) == "step_decay_lr"


def test_non_diverged_trials_without_accuracy_are_left_out_with_a_warning(planted):
    frame = planted.copy()
    frame.loc[:4, "test_acc"] = float("nan")
    frame.loc[:4, "diverged"] = False
    table = TrialTable.from_frame(frame)
    assert len(table) == len(frame) - 5
    assert table.warnings == ["5 non-diverged trials without a finite test_acc were left out"]
