"""A study with an SGD section and an AdamW section gives two laws in one analysis: each fitted on its own
section's trials (planted with different α), law.json keeping the primary, laws/*.json and the index."""

import json

import pandas as pd
import pytest

from cli_in_process import run
from scalestudy.analysis import TrialTable
from scalestudy.analysis.fits.law_groups import law_sections
from scalestudy.analysis.pipeline import analyze
from scalestudy.law import ScalingLaw
from scalestudy.law.groups import LawIndex, select_law
from scalestudy.law.records import LawFileError
from scalestudy.testing.planted import make_planted_table

CELLS = {"batch_size": (32, 64, 128, 256, 512), "momenta": (0.9,), "lr_points": 7}


def two_optimizer_table():
    """SGD on the linear rule (α = 1) with 3 seeds, AdamW on the square-root rule (α = 0.5) with 2."""
    sgd = make_planted_table(1.0, 1.0, 1e-3, batch_sizes=CELLS["batch_size"], momenta=CELLS["momenta"],
                             lr_points=CELLS["lr_points"], seeds=(0, 1, 2), rng=1)
    adamw = make_planted_table(0.5, 0.0, 1e-4, batch_sizes=CELLS["batch_size"], momenta=CELLS["momenta"],
                               lr_points=CELLS["lr_points"], rng=2)
    sgd["section"], sgd["optimizer"] = "vision", "sgd"
    adamw["section"], adamw["optimizer"] = "lm", "adamw"
    return TrialTable.from_frame(pd.concat([sgd, adamw], ignore_index=True))


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return analyze(two_optimizer_table(), tmp_path_factory.mktemp("out"), log_to_mlflow=False)


def test_two_laws_each_from_its_own_section(result):
    laws = {name: ScalingLaw.load(result.out_dir / "laws" / f"{name.replace('/', '-')}.json")
            for name in ("sgd/vision", "adamw/lm")}
    assert laws["sgd/vision"].group == "sgd/vision" and laws["adamw/lm"].group == "adamw/lm"
    assert laws["sgd/vision"].optimizer == "sgd" and laws["adamw/lm"].optimizer == "adamw"
    low, high = laws["sgd/vision"].ci95.alpha
    assert low <= 1.0 <= high and not low <= 0.5 <= high
    low, high = laws["adamw/lm"].ci95.alpha
    assert low <= 0.5 <= high and not low <= 1.0 <= high
    # law.json stays the primary (the section with the most trials) for every reader of one law
    primary = ScalingLaw.load(result.out_dir / "law.json")
    assert primary.group == "sgd/vision" and primary.alpha == pytest.approx(laws["sgd/vision"].alpha)
    index = LawIndex.load(result.out_dir / "laws" / "index.json")
    assert index.groups == ("sgd/vision", "adamw/lm") and [law.primary for law in index.laws] == [True, False]


def test_the_report_and_summary_put_the_laws_side_by_side(result):
    report = result.report_path.read_text()
    section = report.split("## Laws by optimizer and section")[1].split("\n## ")[0]
    assert "| sgd/vision (primary) | sgd |" in section and "| adamw/lm | adamw |" in section
    assert "### sgd/vision" in section and "### adamw/lm" in section and "Batch-size rule (adamw)" in section
    summary = result.summary()
    assert "2 laws" in summary and "sgd/vision (law.json): alpha " in summary and "adamw/lm: alpha " in summary


def test_select_law_by_group_or_file_name(result):
    law_json = result.out_dir / "law.json"
    assert select_law(law_json, None) == law_json
    assert select_law(law_json, "adamw/lm").name == "adamw-lm.json"
    assert select_law(law_json, "adamw-lm") == result.out_dir / "laws" / "adamw-lm.json"
    with pytest.raises(LawFileError, match="--group sgd/lm: not a law of this study; allowed: sgd/vision, adamw/lm"):
        select_law(law_json, "sgd/lm")


def test_a_study_of_one_section_writes_one_law_as_before(tmp_path):
    frame = make_planted_table(1.0, 1.0, 1e-3, batch_sizes=(32, 64, 128, 256), momenta=(0.9,), lr_points=7)
    frame["section"] = "law"
    result = analyze(TrialTable.from_frame(frame), tmp_path, log_to_mlflow=False)
    assert not (tmp_path / "laws").exists() and result.groups == ()
    assert json.loads((tmp_path / "law.json").read_text())["group"] is None
    assert "Laws by optimizer" not in result.report_path.read_text()
    with pytest.raises(LawFileError, match="has no laws/index.json beside it"):
        select_law(tmp_path / "law.json", "sgd/law")


def test_recommend_and_plan_select_a_law_by_group(result):
    law_json = result.out_dir / "law.json"
    alphas = {name: f"alpha = {law.alpha:.3g}" for name, law in result.group_laws.items()}
    code, out, err = run(["recommend", "--law", law_json, "--group", "adamw/lm", "--batch-size", 128, "--force"])
    assert code == 0 and alphas["adamw/lm"] in out.splitlines()[1] and "note:" not in err, out + err
    code, out, err = run(["recommend", "--law", law_json, "--batch-size", 128, "--force"])
    assert code == 0 and alphas["sgd/vision"] in out.splitlines()[1]
    assert "this study has 2 laws (sgd/vision, adamw/lm)" in err
    code, out, err = run(["recommend", "--law", law_json, "--group", "rmsprop/x", "--batch-size", 128])
    assert (code, out) == (2, "") and err == ("error: --group rmsprop/x: not a law of this study; allowed: "
                                             "sgd/vision, adamw/lm\n")
    plan = result.out_dir / "plan.yaml"
    code, out, err = run(["plan", "--law", law_json, "--group", "adamw-lm", "--workers", 2, "--max-batch-per-worker",
                          64, "--throughput", 1000, "--epochs", 4, "--force", "--out", plan])
    assert code == 0 and "laws/adamw-lm.json" in out.splitlines()[0], out + err


def test_check_law_checks_the_group_it_is_given(result, tmp_path):
    table = two_optimizer_table()
    adamw = TrialTable(table.frame[table.frame["section"] == "lm"].reset_index(drop=True), {"source": "dataframe"})
    runs = adamw.to_parquet(tmp_path / "adamw.parquet")
    code, out, err = run(["check-law", "--law", result.out_dir / "law.json", "--group", "adamw/lm", "--runs", runs,
                          "--out", tmp_path / "check"])
    assert code == 0, out + err  # the AdamW law holds on its own trials
    assert json.loads((tmp_path / "check" / "check.json").read_text())["law"].endswith("laws/adamw-lm.json")


def test_only_sections_that_span_batch_sizes_are_law_groups():
    table = two_optimizer_table()
    frame = table.frame.copy()
    baseline = frame[(frame["section"] == "lm") & (frame["batch_size"] == 64)].assign(section="baseline")
    table = TrialTable(pd.concat([frame, baseline], ignore_index=True), table.provenance)
    assert law_sections(table) == ["vision", "lm"]  # most trials first; the one-B baseline has no α to fit
