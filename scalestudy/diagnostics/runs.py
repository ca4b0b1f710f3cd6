"""``scalestudy interpolate RUN_A RUN_B``: Keskar et al.'s 1-D interpolation between two trials.

Loads both trials' final checkpoints from Ray storage, evaluates the line
θ(α) = α·θ_B + (1−α)·θ_A on the training and test sets, writes ``interpolation.png`` and
``interpolation.json``, and logs both to an MLflow run under run A's study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalestudy.endpoints import StudyError, check_existing_store, connect_timeout


@dataclass
class InterpolationOutput:
    figure: Path
    data: Path
    mlflow_run_id: str | None


def interpolate_runs(run_a: str, run_b: str, *, tracking_uri: str, storage_path: str, out_dir: Path,
                     points: int = 25, connect_timeout_s: float | None = None) -> InterpolationOutput:
    """``connect_timeout_s`` bounds the check that the tracking store exists (a missing one is an
    error here, never created)."""
    check_existing_store(tracking_uri, "--tracking-uri", connect_timeout(connect_timeout_s))  # before torch loads
    import numpy as np
    import torch

    from scalestudy import tracking
    from scalestudy.checkpoints import load_trial_state
    from scalestudy.diagnostics.interpolation import interpolate, plot_interpolation, to_json
    from scalestudy.train.distributed import Distributed
    from scalestudy.train.loop import EpochLoop

    a = load_trial_state(run_a, tracking_uri, storage_path)
    b = load_trial_state(run_b, tracking_uri, storage_path)
    for key in ("dataset", "dataset_options", "model", "model_options"):
        if a.config[key] != b.config[key]:
            raise StudyError(f"runs differ in {key} ({a.config[key]!r} vs {b.config[key]!r}): "
                             "interpolation needs the same model on the same data")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    # Built from run A's config: same architecture, data and ghost BN layers (same state keys).
    loop = EpochLoop(a.config, Distributed(device=torch.device("cpu")))
    data = loop.data
    subset = min(data.train_size, max(data.test_size, 1024))

    def evaluate(model: torch.nn.Module) -> tuple[float, float, float, float]:
        train_loss, train_acc = loop.evaluate(data.train_x[:subset], data.train_y[:subset])
        test_loss, test_acc = loop.evaluate(data.test_x, data.test_y)
        return train_loss, train_acc, test_loss, test_acc

    alphas = [float(x) for x in np.linspace(-1.0, 2.0, points)]
    result = interpolate(loop.model, a.state["model"], b.state["model"], evaluate, alphas=alphas,
                         labels=(a.label, b.label))
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_interpolation(result, out_dir / "interpolation.png")
    data_path = out_dir / "interpolation.json"
    data_path.write_text(to_json(result))

    client = tracking.client(tracking_uri)
    parent = client.get_run(run_a)
    run = client.create_run(parent.info.experiment_id, run_name=f"interpolate {a.label} → {b.label}", tags={
        tracking.PARENT_TAG: parent.data.tags[tracking.PARENT_TAG], tracking.ROLE_TAG: "interpolation",
        "scalestudy.run_a": run_a, "scalestudy.run_b": run_b})
    client.log_artifact(run.info.run_id, str(figure))
    client.log_artifact(run.info.run_id, str(data_path))
    client.set_terminated(run.info.run_id)
    return InterpolationOutput(figure=figure, data=data_path, mlflow_run_id=run.info.run_id)
