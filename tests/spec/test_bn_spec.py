"""The BN batch in the spec: plain batch norm is never silently re-batched (a one-line error names
the setting that would do it), precise BN is typed, and the effective BN batch is a trial param."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from scalestudy.spec import SpecError, spec_from_dict
from scalestudy.trial.config import expand_trials
from scalestudy.trial.record import trial_params


def _spec(workload=None, diagnostics=None, workers=1, batch_size=(64,)) -> dict:
    return {"name": "t",
            "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 1024, "test_size": 256},
                         "model": "mlp", "epochs": 2, **(workload or {})},
            "grid": {"batch_size": list(batch_size), "lr": [0.1], "momentum": [0.9]},
            "diagnostics": diagnostics or {}, "resources": {"workers_per_trial": workers}}


GNS = {"gradient_noise_scale": True}


@pytest.mark.parametrize(("raw", "fragment"), [
    (_spec({"max_device_batch_size": 32}),
     "workload.max_device_batch_size: per-worker batch 64 above 32 would be split into micro-batches, which "
     "would change plain batch norm's BN batch (workload.ghost_batch_size is null); set workload.ghost_batch_size"),
    (_spec({"max_device_batch_size": 32}, workers=2, batch_size=(32, 128)),
     "per-worker batch 64 above 32"),
    (_spec(diagnostics=GNS),
     "diagnostics.gradient_noise_scale: needs two batch sizes per step, and with one worker that splits the step, "
     "which would change plain batch norm's BN batch (workload.ghost_batch_size is null); set "
     "workload.ghost_batch_size, model_options.norm: none, or resources.workers_per_trial ≥ 2"),
    (_spec({"precise_bn": {"batches": 4}, "model_options": {"norm": "none"}}),
     "workload.precise_bn: must be null for a model with norm: none"),
    (_spec({"precise_bn": {}}), "workload.precise_bn.batches: required field is missing"),
    (_spec({"precise_bn": {"batches": 0}}), "workload.precise_bn.batches: Input should be greater than 0"),
    (_spec({"precise_bn": {"batches": 4, "every": 2}}), "workload.precise_bn: unknown key 'every'; allowed: batches"),
])
def test_settings_that_would_change_the_bn_batch_are_one_line_errors(raw, fragment):
    with pytest.raises(SpecError) as error:
        spec_from_dict(raw)
    assert fragment in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("raw", [
    _spec({"ghost_batch_size": 16, "max_device_batch_size": 32}, diagnostics=GNS),  # halves of whole ghost batches
    _spec({"model_options": {"norm": "none"}, "max_device_batch_size": 32}, diagnostics=GNS),  # no BN to change
    _spec(diagnostics=GNS, workers=2),  # DDP: the local gradient is the small batch, no split
    _spec({"max_device_batch_size": 64, "precise_bn": {"batches": 2}}),  # at the limit: not split
])
def test_settings_that_keep_the_bn_batch_validate(raw):
    spec_from_dict(raw)


@pytest.mark.parametrize(("raw", "bn_batch", "precise"), [
    (_spec({"ghost_batch_size": 16}), "16", ""),
    (_spec({"precise_bn": {"batches": 3}}), "64", "3"),
    (_spec(workers=2), "32", ""),  # plain BN normalises over the per-worker batch B/W
    (_spec({"model_options": {"norm": "none"}}), "", ""),
])
def test_effective_bn_batch_is_a_param(raw, bn_batch, precise):
    params = trial_params(expand_trials(spec_from_dict(raw))[0].to_dict())
    assert params["bn_batch_size"] == bn_batch and params["precise_bn_batches"] == precise


def test_precise_bn_is_part_of_the_trial_identity():
    # (Keys of existing studies are read from their stored configs, never recomputed: tests/trial/test_trial.py.)
    config = expand_trials(spec_from_dict(_spec({"ghost_batch_size": 16})))[0]
    with_precise = expand_trials(spec_from_dict(_spec({"ghost_batch_size": 16, "precise_bn": {"batches": 2}})))[0]
    assert with_precise.trial_key != config.trial_key


def test_cli_refuses_a_plain_bn_split_with_exit_code_2(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec({"max_device_batch_size": 32})))
    proc = subprocess.run([sys.executable, "-m", "scalestudy.cli", "validate", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: workload.max_device_batch_size: ") and proc.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == [path]  # nothing created
