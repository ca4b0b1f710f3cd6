"""Spec validation: good specs load frozen; bad ones give one line naming the field."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from scalestudy.spec import LEGACY_OBJECTIVE, Objective, SpecError, apply_overrides, load_spec, spec_from_dict
from scalestudy.trial.config import expand_trials
from scalestudy.trial.record import trial_params

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "search_spaces").glob("*.yaml")) + sorted((REPO / "search_spaces" / "reference").glob("*.yaml"))


def base() -> dict:
    return {
        "name": "t",
        "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 1024}, "model": "mlp",
                     "epochs": 4, "ghost_batch_size": 16},
        "grid": {"batch_size": [32, 64], "lr": [0.05, 0.1], "momentum": [0.0, 0.9], "seeds": [0]},
        "schedule": {"kind": "constant"},
    }


def with_(path: str, value) -> dict:
    return apply_overrides(base(), [f"{path}={yaml.safe_dump(value, default_flow_style=True).strip()}"]) \
        if value is not ... else base()


def test_base_spec_is_valid_and_frozen():
    spec = spec_from_dict(base())
    assert spec.workload.epochs == 4
    with pytest.raises(ValidationError):
        spec.workload.epochs = 5  # frozen
    assert len(expand_trials(spec)) == 2 * 2 * 2


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_validate(path):
    spec = load_spec(path)
    assert expand_trials(spec)


def test_stop_at_train_loss_reaches_the_trial_its_params_and_its_identity():
    plain = expand_trials(spec_from_dict(base()))[0]
    stopping = expand_trials(spec_from_dict(with_("workload.stop_at_train_loss", 0.05)))[0]
    assert plain.workload.stop_at_train_loss is None and stopping.workload.stop_at_train_loss == 0.05
    assert trial_params(plain.to_dict())["stop_at_train_loss"] == ""
    assert trial_params(stopping.to_dict())["stop_at_train_loss"] == "0.05"
    assert stopping.trial_key != plain.trial_key  # another trial, another MLflow run


def test_linear_rule_lr_grid():
    raw = base()
    raw["grid"]["lr"] = {"reference_batch_size": 32, "reference_lr": 0.1, "reference_momentum": 0.9,
                         "multipliers": [0.5, 1, 2]}
    trials = expand_trials(spec_from_dict(raw))
    by_cell = {(t.batch_size, t.momentum): sorted(t.lr for t in trials
               if (t.batch_size, t.momentum) == (t2.batch_size, t2.momentum))
               for t2 in trials for t in [t2]}
    lrs = sorted(t.lr for t in trials if t.batch_size == 64 and t.momentum == 0.9)
    assert lrs == pytest.approx([0.1, 0.2, 0.4])  # ε ∝ B
    lrs0 = sorted(t.lr for t in trials if t.batch_size == 64 and t.momentum == 0.0)
    assert lrs0 == pytest.approx([1.0, 2.0, 4.0])  # ε ∝ (1−m)
    assert by_cell


def test_overrides_parse_yaml_values_and_create_paths():
    raw = apply_overrides(base(), ["grid.batch_size=[16, 48]", "workload.epochs=2", "tracking.experiment=x"])
    assert raw["grid"]["batch_size"] == [16, 48]
    assert raw["workload"]["epochs"] == 2
    assert raw["tracking"] == {"experiment": "x"}


def test_scientific_notation_is_a_float(tmp_path):
    text = yaml.safe_dump(base()).replace("- 0.05", "- 5e-2")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert 0.05 in load_spec(path).grid.lr


def test_sections_merge_over_base():
    raw = base()
    raw["sections"] = {
        "law": {},
        "schedules": {"grid": {"batch_size": [32], "lr": [0.1], "momentum": [0.9]},
                      "schedule": [{"kind": "step_decay_lr", "milestones": [2]},
                                   {"kind": "increase_batch", "milestones": [2], "factor": 2}]},
    }
    trials = expand_trials(spec_from_dict(raw))
    assert sum(t.section == "law" for t in trials) == 8
    schedules = [t for t in trials if t.section == "schedules"]
    assert sorted(t.schedule.kind for t in schedules) == ["increase_batch", "step_decay_lr"]
    assert all(t.workload.ghost_batch_size == 16 for t in trials)


# (override path, value, expected fragment of the one-line message)
BAD = [
    ("grid.batch_size", [0, 32], "grid.batch_size[0] must be > 0"),
    ("grid.batch_size", [-4], "grid.batch_size[0] must be > 0"),
    ("grid.batch_size", [], "grid.batch_size: List should have at least 1 item"),
    ("grid.batch_size", [32.5], "grid.batch_size[0]: Input should be a valid integer"),
    ("grid.batch_size", "big", "grid.batch_size: Input should be a valid list"),
    ("grid.lr", [0.0], "grid.lr[0] must be > 0"),
    ("grid.lr", [-0.1], "grid.lr[0] must be > 0"),
    ("grid.lr", [], "grid.lr"),
    ("grid.lr", {"reference_batch_size": 32, "multipliers": [1]}, "grid.lr.reference_lr: required"),
    ("grid.lr", {"reference_batch_size": 32, "reference_lr": 0.1, "multipliers": [0]}, "multipliers[0] must be > 0"),
    ("grid.momentum", [1.0], "grid.momentum[0] must be in [0, 1)"),
    ("grid.momentum", [-0.1], "grid.momentum[0] must be in [0, 1)"),
    ("grid.momentum", [], "grid.momentum: List should have at least 1 item"),
    ("grid.seeds", [], "grid.seeds: List should have at least 1 item"),
    ("grid.seeds", ["a"], "grid.seeds[0]: Input should be a valid integer"),
    ("grid.weight_decay", -1, "grid.weight_decay: Input should be greater than or equal to 0"),
    ("grid.nesterov", "yes please", "grid.nesterov: Input should be a valid boolean"),
    ("grid.typo", 1, "grid: unknown key 'typo'; allowed: batch_size, lr"),
    ("typo", 1, "unknown key 'typo'; allowed: name, description, workload"),
    ("workload.dataset", "imagenet", "unknown dataset 'imagenet'; known: cifar10, image_folder, mnist1d, nqm, synthetic, text_bytes"),
    ("workload.model", "gpt", "unknown model 'gpt'; known:"),
    ("workload.epochs", 0, "workload.epochs: Input should be greater than 0"),
    ("workload.epochs", "ten", "workload.epochs: Input should be a valid integer"),
    ("workload.ghost_batch_size", 0, "workload.ghost_batch_size: Input should be greater than 0"),
    ("workload.ghost_batch_size", 24, "per-worker batch 32 is not a multiple of workload.ghost_batch_size=24"),
    ("workload.dataset_options", {"train_size": 48}, "grid.batch_size: 64 exceeds the training-set size 48"),
    ("workload.dataset_options", {"colour": 1}, "workload.dataset_options: unknown option 'colour'"),
    ("workload.model_options", {"depth": 3}, "workload.model_options: unknown option 'depth'"),
    ("workload.max_device_batch_size", 8, "workload.max_device_batch_size: per-worker batch"),
    ("workload.stop_at_train_loss", 0, "workload.stop_at_train_loss: Input should be greater than 0"),
    ("workload.stop_at_train_loss", "low", "workload.stop_at_train_loss: Input should be a valid number"),
    ("schedule", {"kind": "cosine"}, "unknown schedule 'cosine'; known: constant, cosine_decay_lr, hybrid"),
    ("schedule", {"kind": "cosine_decay_lr", "milestones": [2]}, "kind cosine_decay_lr decays ε every update"),
    ("schedule", {"kind": "cosine_decay_lr", "warmup_epochs": 4}, "warmup_epochs: must be below workload.epochs=4"),
    ("schedule", {"kind": "step_decay_lr", "milestones": [3, 2]}, "milestones: must be strictly increasing"),
    ("schedule", {"kind": "step_decay_lr", "milestones": [2, 2]}, "milestones: must be strictly increasing"),
    ("schedule", {"kind": "step_decay_lr", "milestones": [4]}, "schedule[0].milestones: must be below workload.epochs=4"),
    ("schedule", {"kind": "step_decay_lr", "milestones": [0]}, "milestones: must be epochs > 0"),
    ("schedule", {"kind": "step_decay_lr", "factor": 1}, "schedule[0].factor: Input should be greater than 1"),
    ("schedule", {"kind": "hybrid", "milestones": [2]}, "max_batch_size: required for kind hybrid"),
    ("schedule", {"kind": "hybrid", "milestones": [2], "max_batch_size": 4096},
     "schedule[0].max_batch_size: must be ≤ the training-set size 1024"),
    ("schedule", {"kind": "increase_batch", "milestones": [1, 2], "factor": 5},
     "grid.batch_size: 1600 (reached by schedule[0] from batch size 64) exceeds the training-set size 1024"),
    ("schedule", {"kind": "increase_batch", "milestones": [1], "factor": 1.25},
     "per-worker batch 40 (reached by schedule[0] from batch size 32) is not a multiple of workload.ghost_batch_size=16"),
    ("schedule", {"kind": "constant", "warmup_epochs": 4}, "warmup_epochs: must be below workload.epochs=4"),
    ("schedule", {"kind": "constant", "speed": 2}, "schedule[0]: unknown key 'speed'"),
    ("resources.workers_per_trial", 0, "resources.workers_per_trial: Input should be greater than 0"),
    ("resources.workers_per_trial", 3, "not divisible by resources.workers_per_trial=3"),
    ("resources.cpus_per_worker", 0, "resources.cpus_per_worker: Input should be greater than 0"),
    ("resources.placement_strategy", "ANYWHERE", "resources.placement_strategy: Input should be 'PACK'"),
    ("name", "has space", "name: String should match pattern"),
    ("tracking.uri", 5, "tracking.uri: Input should be a valid string"),
    ("sections", {"x": {"grid": {"batch_size": [7]}}}, "sections.x.grid.batch_size: per-worker batch 7"),
    ("sections", {"x": {"epochs": 3}}, "sections.x: unknown key 'epochs'; allowed: workload, optimizer, grid, schedule"),
]


@pytest.mark.parametrize("path,value,fragment", BAD, ids=[f"{p}={v}" for p, v, _ in BAD])
def test_bad_spec_gives_one_line_naming_the_field(path, value, fragment):
    with pytest.raises(SpecError) as error:
        spec_from_dict(with_(path, value))
    message = str(error.value)
    assert "\n" not in message
    assert fragment in message, message


def test_bad_set_syntax():
    with pytest.raises(SpecError, match="--set: expected dotted.key=value"):
        apply_overrides(base(), ["grid.batch_size"])
    with pytest.raises(SpecError, match="--set grid.batch_size.x: grid.batch_size is not a mapping"):
        apply_overrides(base(), ["grid.batch_size.x=1"])


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        load_spec(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(listing)


def test_unsafe_yaml_is_refused(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        load_spec(evil)


@pytest.mark.parametrize("path,value,fragment", BAD[::4], ids=[f"{p}={v}" for p, v, _ in BAD[::4]])
def test_cli_rejects_bad_spec_without_side_effects(tmp_path, path, value, fragment):
    """Exit code 2, one line on stderr, no mlflow.db, no Ray session left behind."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(with_(path, value)))
    for command in ("validate", "run"):
        proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", command, str(spec)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={"RAY_TMPDIR": str(tmp_path / "ray"), "PATH": "/usr/bin:/bin",
                                   "HOME": str(tmp_path)})
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
        assert not (tmp_path / "mlflow.db").exists()
        assert not (tmp_path / "ray").exists()
        assert not (tmp_path / "ray_results").exists()


def test_an_objective_scores_higher_for_better_trials_in_either_direction():
    loss, accuracy = Objective(metric="test_loss", direction="min"), LEGACY_OBJECTIVE
    assert (loss.metric, loss.mode, accuracy.metric, accuracy.mode) == ("test_loss", "min", "test_acc", "max")
    assert loss.score({"test_loss": 2.0}) == -2.0 > loss.score({"test_loss": 3.0})
    assert accuracy.score({"test_acc": 0.9}) == 0.9 > accuracy.score({"test_acc": 0.8, "test_loss": 0.1})
    # No value, or a diverged trial: the lowest score, whatever the metric reported.
    for reported in ({}, {"test_loss": None}, {"test_loss": math.inf}, {"test_loss": math.nan},
                     {"test_loss": 0.5, "diverged": 1}, {"test_acc": 0.3}):
        assert loss.score(reported) == -math.inf, reported
    # The value as reported (what ASHA compares): finite or NaN, a diverged trial's included.
    assert loss.value({"test_loss": 0.5, "diverged": 1}) == 0.5 and math.isnan(loss.value({"test_loss": math.inf}))
