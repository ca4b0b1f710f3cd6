"""``scalestudy bench search`` from the command line: its JSON, the equal budget, and one error line
(exit code 2) for a --replay file it cannot replay or a flag another benchmark does not take."""

from __future__ import annotations

import json

import pytest

from cli_in_process import run
from scalestudy.bench import search as bench_search
from scalestudy.calibration.reference import DATA
from scalestudy.search import SEARCHES
from scalestudy.search.plan import SearchPlan

FIGURES = ("compute_fraction", "alpha_width_ratio", "coverage", "fitted")


def test_the_json_has_each_algorithms_figures():
    code, out, err = run(["bench", "search", "--tiny", "--repetitions", "1", "--json"])
    assert code == 0, err
    table = json.loads(out)
    rows = {row["algorithm"]: row for row in table["rows"]}
    per_cell = ("quasi_random", "optuna", "bracket")
    assert list(rows) == ["whole table", "adaptive", *per_cell, *(f"{name}, 2 seeds" for name in per_cell),
                          "grid_subsample"]
    assert {row["table"] for row in rows.values()} == {"text_lm_adamw"}
    for name in (*per_cell, "bracket, 2 seeds", "grid_subsample"):
        assert set(FIGURES) <= set(rows[name]), name
        assert 0 < rows[name]["compute_fraction"] < 1
    assert rows["whole table"]["compute_fraction"] == 1.0


class AdaptiveStandIn:
    """SEARCHES with a stand-in for adaptive (every fourth listed lr of each cell) or without it."""

    def __init__(self, present: bool) -> None:
        self.present = present

    def get(self, name: str):
        if name != "adaptive":
            return SEARCHES.get(name)
        if not self.present:
            raise ImportError("No module named 'scalestudy.search.adaptive'")
        return self.build

    @staticmethod
    def build(spec, cells) -> SearchPlan:
        assert spec.search.budget.grid_fraction == 0.25 and spec.search.beyond_grid == 0
        from ray import tune

        trials = [cell.trial(lr).to_dict() for cell in cells for lr in cell.lr_grid[::4]]
        return SearchPlan({"trial": tune.grid_search(trials)}, None, None, 1, len(trials))


def test_the_per_cell_searches_spend_what_the_adaptive_spent(monkeypatch):
    monkeypatch.setattr(bench_search, "SEARCHES", AdaptiveStandIn(present=True))
    study = bench_search.RecordedStudy.from_parquet(DATA / "text_lm_adamw.parquet")
    runs = {run.algorithm: run for run in bench_search.repetition((study, 0, 0.25))}
    assert runs["adaptive"].trials == 7 * 8 * 3  # lrs 0, 4, 8 of 10 in each of the 7 × 8 (B, seed) cells
    assert runs["quasi_random"].design == runs["optuna"].design == "3/cell × 8 seeds"
    assert runs["quasi_random"].trial_epochs == runs["adaptive"].trial_epochs
    assert runs["quasi_random, 2 seeds"].design == "12/cell × 2 seeds"  # 7 × 2 cells × 12 × 3 epochs = 504
    assert runs["grid_subsample"].design == "½ lrs, 5/8 seeds"  # 0.3 of the table: 5 of 8 seeds on half the lrs


def test_an_algorithm_not_in_this_build_is_reported_not_available(monkeypatch):
    monkeypatch.setattr(bench_search, "SEARCHES", AdaptiveStandIn(present=False))
    table = bench_search.bench_search(tiny=True, repetitions=1)
    rows = {row["algorithm"]: row for row in table.rows}
    assert rows["adaptive"]["design"] == "not available"
    assert rows["bracket"]["compute_fraction"] > 0  # the others at the fraction of the table instead


def one_seed_table(path):
    import pandas as pd

    frame = pd.read_parquet(DATA / "text_lm_adamw.parquet")
    frame[frame["seed"] == 0].to_parquet(path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.parquet", "no trial table at {p} (no such file; expected a Parquet file such as "
                                      "trials.parquet)"),
    (lambda p: (p / "notes.parquet").write_text("not a table") and p / "notes.parquet",
     "not a readable Parquet file"),
    (lambda p: one_seed_table(p / "one_seed.parquet"), "the law's trials have 1 seed (0); a replay needs at least 2"),
])
def test_a_bad_replay_file_is_one_error_line(tmp_path, make, message):
    path = make(tmp_path)
    code, out, err = run(["bench", "search", "--replay", path])
    assert code == 2 and out == ""
    assert err.startswith(f"error: --replay {path}: ") and err.count("\n") == 1
    assert message.format(p=path) in err


@pytest.mark.parametrize("argv, message", [
    (["bench", "loop", "--replay", "x.parquet"], "error: --replay: only for bench search (got bench loop)"),
    (["bench", "all", "--repetitions", "3"], "error: --repetitions: only for bench search | cbs (got bench all)"),
    (["bench", "search", "--repetitions", "0"], "error: --repetitions: must be at least 1, got 0"),
    (["bench", "search", "--fraction", "1.5"], "error: --fraction: must be a share of the grid in (0, 1], got 1.5"),
])
def test_search_flags_are_checked_before_anything_runs(argv, message):
    code, _, err = run(argv)
    assert code == 2 and err.strip() == message
