"""Trial configs: the plain dicts that Ray Tune hands each trial, built from a StudySpec.

A trial config is JSON-serialisable and self-contained: the epoch loop runs from it
alone (no Ray, no MLflow), which is what makes the loop testable and benchmarkable.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from scalestudy.batching import bn_batch_size
from scalestudy.data import dataset_options, train_size
from scalestudy.models import has_batch_norm
from scalestudy.noise import noise_scale
from scalestudy.spec import GradPenalty, Schedule, StudySpec

# What never changes during a trial: logged once as MLflow params (DESIGN decision 1).
# The gradient penalty is logged as grad_penalty (its kind), grad_norm_penalty (its strength λ:
# the name the trial table has always read) and grad_penalty_block_size.
PARAM_KEYS = (
    "dataset", "model", "dataset_size", "epochs", "ghost_batch_size", "batch_size", "lr",
    "momentum", "nesterov", "weight_decay", "seed", "schedule", "schedule_args", "section",
    "workers", "cpus_per_worker", "gpus_per_worker", "grad_clip_norm", "grad_penalty", "grad_norm_penalty",
    "grad_penalty_block_size", "trial_key", "bn_batch_size", "precise_bn_batches", "stop_at_train_loss",
)


def expand_cells(spec: StudySpec) -> list[dict[str, Any]]:
    """One partial trial config per (section, schedule, m, B, seed): everything but ε.

    ``cell["lr_grid"]`` holds the spec's learning rates for the cell (a list, or the
    linear-rule multipliers applied); search algorithms may choose other values.
    """
    resources = spec.resources
    cells: list[dict[str, Any]] = []
    for section_name, section in spec.resolved_sections().items():
        grid, workload = section.grid, section.workload
        # Resolved options (defaults filled, relative paths made absolute): Tune runs each
        # trial in its own working directory.
        resolved_options = dataset_options(workload.dataset, workload.dataset_options)
        dataset_size = train_size(workload.dataset, resolved_options)
        precise_bn = workload.precise_bn.model_dump(mode="json") if workload.precise_bn is not None else None
        with_batch_norm = has_batch_norm(workload.model, workload.model_options)
        for schedule in section.schedule:
            for momentum in grid.momentum:
                for batch_size in grid.batch_size:
                    for seed in grid.seeds:
                        cells.append({
                            "study": spec.name,
                            "section": section_name,
                            "dataset": workload.dataset,
                            "dataset_options": resolved_options.model_dump(mode="json"),
                            "dataset_size": dataset_size,
                            "model": workload.model,
                            "model_options": dict(workload.model_options),
                            "epochs": workload.epochs,
                            "ghost_batch_size": workload.ghost_batch_size,
                            "max_device_batch_size": workload.max_device_batch_size,
                            "divergence_loss": workload.divergence_loss,
                            "train_metrics": workload.train_metrics,
                            "stop_at_train_loss": workload.stop_at_train_loss,
                            "grad_clip_norm": workload.grad_clip_norm,
                            "grad_penalty": (None if workload.grad_penalty is None
                                             else workload.grad_penalty.model_dump(mode="json")),
                            "precise_bn": precise_bn,
                            "bn_batch_size": bn_batch_size(batch_size, resources.workers_per_trial,
                                                           workload.ghost_batch_size, with_batch_norm),
                            "diagnostics": spec.diagnostics.model_dump(mode="json"),
                            "batch_size": batch_size,
                            "momentum": float(momentum),
                            "nesterov": grid.nesterov,
                            "weight_decay": grid.weight_decay,
                            "seed": seed,
                            "schedule": schedule.model_dump(mode="json"),
                            "workers": resources.workers_per_trial,
                            "cpus_per_worker": resources.cpus_per_worker,
                            "gpus_per_worker": resources.gpus_per_worker,
                            "checkpoint_every": resources.checkpoint_every,
                            "lr_grid": [float(lr) for lr in grid.learning_rates(batch_size, momentum)],
                        })
    return cells


def trial_for(cell: dict[str, Any], lr: float) -> dict[str, Any]:
    """The full trial config of a cell at learning rate ``lr``."""
    trial = {key: value for key, value in cell.items() if key != "lr_grid"}
    trial["lr"] = float(lr)
    trial["trial_key"] = trial_key(trial)
    trial["run_name"] = run_name(trial)
    return trial


def expand_trials(spec: StudySpec) -> list[dict[str, Any]]:
    """The full grid: one config per (section, schedule, m, B, ε, seed), in a stable order."""
    trials = [trial_for(cell, lr) for cell in expand_cells(spec) for lr in cell["lr_grid"]]
    keys = [t["trial_key"] for t in trials]
    if len(set(keys)) != len(keys):
        raise ValueError("the spec expands to duplicate trials (repeated values in a grid list?)")
    return trials


def schedule_of(config: dict[str, Any]) -> Schedule:
    return Schedule.model_validate(config["schedule"])


def penalty_of(config: dict[str, Any]) -> GradPenalty | None:
    if "grad_penalty" not in config and config.get("grad_norm_penalty"):  # stored before grad_penalty existed
        return GradPenalty(kind="full_gradient", strength=float(config["grad_norm_penalty"]))
    raw = config.get("grad_penalty")
    return None if raw is None else GradPenalty.model_validate(raw)


def _penalty_identity(config: dict[str, Any]) -> dict[str, Any]:
    # Trials without a penalty keep the identity they had before grad_penalty existed
    # (grad_norm_penalty 0.0), so their keys and MLflow runs survive an upgrade mid-study.
    penalty = penalty_of(config)
    return {"grad_norm_penalty": 0.0} if penalty is None else {"grad_penalty": penalty.model_dump(mode="json")}


def trial_ended(config: dict[str, Any], last: dict[str, Any]) -> bool:
    """Whether a trial whose latest epoch report is ``last`` has ended on its own: it diverged, ran
    its planned epochs, or its training loss reached ``stop_at_train_loss``. The one rule for the
    loop's stop, the trial's status (``ok`` vs ``stopped`` early by the search) and sync."""
    if last.get("diverged") or last.get("epoch", 0) >= config["epochs"]:
        return True
    target = config.get("stop_at_train_loss")  # absent from configs stored before it existed
    return target is not None and last.get("train_loss", math.inf) <= target


def final_status(config: dict[str, Any], last: dict[str, Any]) -> str:
    """ok (planned epochs done, or the training-loss target reached), diverged, or stopped (early
    stopping ended it before either)."""
    if last.get("diverged"):
        return "diverged"
    return "ok" if trial_ended(config, last) else "stopped"


def steps_to_target_method(diagnostics: dict[str, Any]) -> str:
    """How updates_to_target is measured (an MLflow param, see the README)."""
    every, margin = diagnostics.get("target_eval_every"), diagnostics.get("target_eval_margin")
    if every is None:
        return "interpolated between epoch ends"
    return f"evaluated every {every} updates" + ("" if margin is None else f" within {margin:g} of the target")


def trial_key(config: dict[str, Any]) -> str:
    """A stable, readable id of the trial's cell: same spec cell ⇒ same key, across resumes."""
    schedule = config["schedule"]
    # Settings added later join the identity only when set, so existing studies keep their keys.
    later = {k: config[k] for k in ("precise_bn", "stop_at_train_loss") if config.get(k) is not None}
    identity = json.dumps(
        {k: config[k] for k in ("dataset", "dataset_options", "model", "model_options", "epochs",
                                "ghost_batch_size", "nesterov", "weight_decay", "workers", "train_metrics",
                                "grad_clip_norm")}
        | _penalty_identity(config) | {"schedule": schedule} | later,
        sort_keys=True,
    )
    digest = hashlib.sha1(identity.encode()).hexdigest()[:6]
    return (f"{config['section']}-B{config['batch_size']}-lr{config['lr']:.4g}-m{config['momentum']:g}"
            f"-{schedule['kind']}-s{config['seed']}-{digest}")


def run_name(config: dict[str, Any]) -> str:
    name = (f"B={config['batch_size']} lr={config['lr']:.4g} m={config['momentum']:g} "
            f"seed={config['seed']} {config['schedule']['kind']}")
    return name if config["section"] in ("main", "law") else f"{name} [{config['section']}]"


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """The static config as MLflow params (strings)."""
    schedule = dict(config["schedule"])
    kind = schedule.pop("kind")
    values = {key: config.get(key) for key in PARAM_KEYS}
    values["schedule"] = kind
    values["schedule_args"] = json.dumps(schedule, sort_keys=True)
    values["precise_bn_batches"] = (config.get("precise_bn") or {}).get("batches")
    penalty = penalty_of(config)
    values["grad_penalty"] = None if penalty is None else penalty.kind
    values["grad_norm_penalty"] = 0.0 if penalty is None else penalty.strength
    values["grad_penalty_block_size"] = None if penalty is None else penalty.block_size
    diagnostics = config.get("diagnostics") or {}
    if diagnostics.get("target_accuracy") is not None:
        values["target_accuracy"] = diagnostics["target_accuracy"]
        values["steps_to_target"] = steps_to_target_method(diagnostics)
    return {key: "" if value is None else str(value) for key, value in values.items()}


def initial_noise_scale(config: dict[str, Any]) -> float:
    return noise_scale(config["lr"], config["momentum"], config["dataset_size"], config["batch_size"])
