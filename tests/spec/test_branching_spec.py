"""The branching block (issue 23): its checkpoints snapped to epochs against hand-computed tables,
and one-line errors naming the field for every study that cannot branch."""

from pathlib import Path

import pytest
from cli_in_process import run

from scalestudy.spec import SpecError, check_consistency, spec_from_dict
from scalestudy.spec.branching import BranchingSpec, checkpoint_epochs, window_epochs

REPO = Path(__file__).resolve().parents[2]


def branched(**overrides) -> dict:
    raw = {
        "name": "b",
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 1024}, "model": "mlp", "epochs": 20},
        "grid": {"batch_size": [16], "lr": [0.05], "momentum": [0.9], "seeds": [0]},
        "analysis": {"objective": {"metric": "train_loss", "direction": "min"}},
        "branching": {"checkpoints": 4, "batch_factors": [1, 2, 4], "window_examples": 1024},
    }
    for key, value in overrides.items():
        block, _, field = key.partition("__")
        if field:
            raw[block] = {**raw[block], field: value}
        else:
            raw[block] = value
    return raw


def checked(raw: dict):
    spec = spec_from_dict(raw)
    check_consistency(spec)
    return spec


def test_geometric_and_linear_checkpoints_match_hand_computed_epochs():
    # E = 80, w = 1: K = 6 points over [1, 79]; geometric 79^(i/5) = 1, 2.40, 5.75, 13.8, 33.0, 79.
    geometric = BranchingSpec(checkpoints=6, window_examples=4000)
    assert checkpoint_epochs(geometric, 80, 4000, 16) == (1, 2, 6, 14, 33, 79)
    # linear 79·(i+1)/6 = 13.2, 26.3, 39.5, 52.7, 65.8, 79 (39.5 rounds to even)
    linear = BranchingSpec(checkpoints=6, spacing="linear", window_examples=4000)
    assert checkpoint_epochs(linear, 80, 4000, 16) == (13, 26, 40, 53, 66, 79)
    # Crowded early points move on by one epoch rather than meet: 9^(i/5) = 1, 1.55, 2.41, 3.74, 5.80, 9.
    assert checkpoint_epochs(BranchingSpec(checkpoints=6, window_examples=1), 10, 100, 10) == (1, 2, 3, 4, 6, 9)


def test_explicit_points_snap_to_the_nearest_epoch_and_windows_cover_whole_epochs():
    # N = 4000, B = 16: 4000 examples (250 updates) an epoch.
    by_examples = BranchingSpec(checkpoints=[3000, 8000, 20000], window_examples=1)
    assert checkpoint_epochs(by_examples, 10, 4000, 16) == (1, 2, 5)
    by_updates = BranchingSpec(checkpoints=[250, 1000], unit="updates", window_examples=1)
    assert checkpoint_epochs(by_updates, 10, 4000, 16) == (1, 4)
    assert window_epochs(BranchingSpec(window_examples=4001), 4000) == 2
    assert window_epochs(BranchingSpec(window_examples=10), 4000) == 1
    with pytest.raises(ValueError, match="branching.checkpoints: points .* meet at epochs"):
        checkpoint_epochs(BranchingSpec(checkpoints=[4000, 5000], window_examples=1), 10, 4000, 16)


def test_a_valid_branched_spec_and_its_default_rule():
    spec = checked(branched())
    assert spec.branching.rule_for("sgd") == "linear" and spec.branching.rule_for("adamw") == "sqrt"
    assert spec.branching.batch_factors == [1, 2, 4]


@pytest.mark.parametrize("overrides, message", [
    ({"grid__batch_size": [16, 32]}, "grid.batch_size: a branched study's grid is its one base run"),
    ({"grid__lr": [0.05, 0.1]}, "grid.lr: a branched study's grid is its one base run"),
    ({"grid__seeds": [0, 1]}, "grid.seeds: a branched study's grid is its one base run"),
    ({"analysis": {"objective": {"metric": "test_acc", "direction": "max"}}}, "analysis.objective: branching compares losses"),
    ({"branching__batch_factors": [2, 4]}, "branching.batch_factors: .*must start with 1"),
    ({"branching__batch_factors": [1, 2, 128]}, "branching.batch_factors: 128 × grid.batch_size 16 exceeds"),
    ({"branching__checkpoints": 30}, "branching.checkpoints: 30 checkpoints need ≥ 30 epochs"),
    ({"branching__checkpoints": 1}, "branching.checkpoints: .*count ≥ 2"),
    ({"branching__window_examples": 0}, "branching.window_examples"),
    ({"branching__rule": "power"}, "branching.rule: Input should be 'linear', 'sqrt' or 'law'"),
    ({"branching__rule": "law"}, "branching.law: rule law needs the fitted law's file"),
    ({"branching__law": "law.json"}, "branching.law: only with rule: law"),
    ({"branching__rule": "law", "branching__law": "/no/such/law.json"}, "branching.law: cannot read law file"),
    ({"schedule": {"kind": "step_decay_lr", "milestones": [5]}}, "schedule: a branched study's base run trains at a constant"),
    ({"resources": {"workers_per_trial": 2}}, "resources.workers_per_trial: a branched study runs one-worker trials"),
])
def test_a_study_that_cannot_branch_is_one_line_naming_the_field(overrides, message):
    with pytest.raises(SpecError, match=message) as error:
        checked(branched(**overrides))
    assert "\n" not in str(error.value)


def test_the_law_rule_reads_alpha_up_front_and_gives_each_branch_its_lr(tmp_path):
    from law_files import make_law

    from scalestudy.run.branching import branch_lrs

    path = str(make_law(alpha=0.7).save(tmp_path / "law.json"))
    spec = checked(branched(branching__rule="law", branching__law=path))
    # B₀ = 16, ε₀ = 0.05, factors 1, 2, 4: ε = 0.05·f^0.7, the law's own ratio predict(fB₀)/predict(B₀).
    assert spec.branching.rule_exponent() == 0.7
    assert branch_lrs(spec, _base_cell(spec)) == pytest.approx({1: 0.05, 2: 0.05 * 2 ** 0.7, 4: 0.05 * 4 ** 0.7})
    assert branch_lrs(checked(branched()), _base_cell(spec)) == pytest.approx({1: 0.05, 2: 0.1, 4: 0.2})  # linear
    no_alpha = make_law(alpha=None, reasons={"alpha": "one batch size"}).save(tmp_path / "no_alpha.json")
    with pytest.raises(SpecError, match=r"branching.law: .*no_alpha.json has no exponent alpha \(one batch size\)"):
        checked(branched(branching__rule="law", branching__law=str(no_alpha)))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SpecError, match="branching.law: .*broken.json") as error:
        checked(branched(branching__rule="law", branching__law=str(tmp_path / "broken.json")))
    assert "\n" not in str(error.value)


def _base_cell(spec):
    from scalestudy.trial.config import expand_trials

    return expand_trials(spec)[0]


def test_validate_prints_the_branches_and_their_compute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # compare: false: the shipped spec's comparison needs the CBS estimator (issue 23's other half)
    code, out, err = run(["validate", REPO / "search_spaces" / "branching_mnist1d.yaml",
                          "--set", "branching.compare=false"])
    assert code == 0, err
    # 179^(i/5) = 1, 2.82, 7.96, 22.4, 63.2, 179; 6 × 5 factors × 3 seeds = 90 branches of one epoch against
    # a 180-epoch base: 1 + 90/180 = 1.5 at B_0 (a little less: the larger batches drop a ragged tail).
    assert "checkpoints after epochs [1, 3, 8, 22, 63, 179]" in out
    assert "90 branches" in out and "compute (all trials' examples / the base's) 1.49" in out
    assert not list(tmp_path.iterdir())  # nothing created


def test_a_bad_branching_flag_is_exit_2_and_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["validate", REPO / "search_spaces" / "branching_mnist1d.yaml",
                        "--set", "branching.compare=false", "--set", "branching.batch_factors=[1,2,512]"])
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: branching.batch_factors: 512")
    assert not list(tmp_path.iterdir())


def test_a_missing_law_file_is_exit_2_and_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["validate", REPO / "search_spaces" / "branching_mnist1d.yaml",
                        "--set", "branching.compare=false", "--set", "branching.rule=law",
                        "--set", "branching.law=missing.json"])
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: branching.law: cannot read law file")
    assert not list(tmp_path.iterdir())
