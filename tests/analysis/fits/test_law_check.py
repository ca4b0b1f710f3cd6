"""``scalestudy check-law``: a law fitted at small B, checked on a second study at larger B, flags
the cells past a planted breakdown and passes where the law holds; files, exit codes, bad input."""

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
