"""1-D linear interpolation between two solutions (Goodfellow et al. 2015; Keskar et al. 2017, Fig. 3).

    θ(α) = α·θ_B + (1 − α)·θ_A,   α ∈ [−1, 2] by default (α = 0 is run A, α = 1 is run B)

At each α the model is loaded with θ(α) and the caller's ``evaluate(model)`` returns
(train loss, train accuracy, test loss, test accuracy). Batch-norm running statistics are not
parameters: interpolated between two solutions (and extrapolated past them) they describe no
network's activations, and a running variance extrapolated past α = 1 can even turn negative.
The caller's ``recalibrate(model)`` recomputes them at every α before the evaluation, as
mode-connectivity studies do (Garipov et al. 2018, §5: BN statistics recomputed at each point). A sharp minimum shows as a narrow
valley around its end of the path; a barrier between the two as a bump in between.
:func:`interpolate` computes a plain :class:`InterpolationResult`; :func:`plot_interpolation`
draws it and :func:`to_dict` / :func:`to_json` / :func:`from_dict` export it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

__all__ = ["DEFAULT_ALPHAS", "InterpolationResult", "from_dict", "interpolate", "interpolate_state",
           "plot_interpolation", "to_dict", "to_json"]

DEFAULT_ALPHAS = tuple(-1.0 + 0.125 * i for i in range(25))  # 25 points in [−1, 2], 0 and 1 exactly among them

#: ``evaluate(model) -> (train_loss, train_acc, test_loss, test_acc)``; accuracies are fractions in [0, 1].
Evaluate = Callable[[nn.Module], Sequence[float]]


@dataclass(frozen=True)
class InterpolationResult:
    """Losses (the evaluate callback's units, e.g. mean cross-entropy in nats) and accuracies
    (fractions correct, 0–1) along the path, one entry per α."""

    alphas: list[float]
    train_loss: list[float]
    train_acc: list[float]
    test_loss: list[float]
    test_acc: list[float]
    labels: tuple[str, str]  # names of run A (α = 0) and run B (α = 1)


def _check_compatible(state_a: Mapping[str, Any], state_b: Mapping[str, Any], model: nn.Module) -> None:
    for other, name in ((state_b, "state_b"), (model.state_dict(), "the model's state dict")):
        missing, extra = sorted(set(state_a) - set(other)), sorted(set(other) - set(state_a))
        if missing or extra:
            raise ValueError(f"state_a and {name} have different keys: only in state_a: {missing[:5]}, "
                             f"only in {name}: {extra[:5]}")
        for key, a in state_a.items():
            b = other[key]
            if isinstance(a, Tensor) != isinstance(b, Tensor):
                raise ValueError(f"{key!r} is a tensor in one state dict and not in the other ({name})")
            if isinstance(a, Tensor) and a.shape != b.shape:
                raise ValueError(f"{key!r} has shape {tuple(a.shape)} in state_a but {tuple(b.shape)} in {name}")
            if isinstance(a, Tensor) and a.is_floating_point() != b.is_floating_point():
                raise ValueError(f"{key!r} is {a.dtype} in state_a but {b.dtype} in {name}")


def interpolate_state(state_a: Mapping[str, Any], state_b: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """θ(α) as a state dict: α·b + (1 − α)·a for every floating-point tensor.

    That is parameters *and* BatchNorm running statistics (running_mean, running_var), so
    eval-mode BN at θ(α) normalises with interpolated statistics. Integer and other
    non-floating tensors (``num_batches_tracked``) and non-tensor entries are copied from A.
    The sum is formed in float64 and cast back, so α = 0 gives exactly A and α = 1 exactly B.
    """
    state: dict[str, Any] = {}
    for key, a in state_a.items():
        b = state_b[key]
        if isinstance(a, Tensor) and a.is_floating_point():
            b = b.to(a.device)
            state[key] = (alpha * b.double() + (1.0 - alpha) * a.double()).to(a.dtype)
        else:
            state[key] = a.clone() if isinstance(a, Tensor) else a
    return state


def interpolate(model: nn.Module, state_a: Mapping[str, Any], state_b: Mapping[str, Any], evaluate: Evaluate,
                alphas: Sequence[float] | None = None, labels: tuple[str, str] = ("A", "B"),
                recalibrate: Callable[[nn.Module], Any] | None = None) -> InterpolationResult:
    """Evaluate ``model`` at θ(α) for each α (default :data:`DEFAULT_ALPHAS`).

    ``state_a`` and ``state_b`` are state dicts of ``model``'s architecture (e.g. the
    ``"model"`` entry of two EpochLoop checkpoints); keys, shapes and floating-point-ness must
    match, else ``ValueError``. ``evaluate`` should put the model in eval mode. ``recalibrate``,
    when given, runs after θ(α) is loaded and before ``evaluate`` (e.g. recompute batch-norm
    statistics). The model's own state is restored afterwards.
    """
    if len(labels) != 2:
        raise ValueError(f"labels must name the two runs, got {labels!r}")
    alphas = [float(a) for a in (DEFAULT_ALPHAS if alphas is None else alphas)]
    _check_compatible(state_a, state_b, model)
    original = {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in model.state_dict().items()}
    rows = []
    try:
        for alpha in alphas:
            model.load_state_dict(interpolate_state(state_a, state_b, alpha))
            if recalibrate is not None:
                recalibrate(model)
            row = tuple(float(v) for v in evaluate(model))
            if len(row) != 4:
                raise ValueError(f"evaluate must return (train_loss, train_acc, test_loss, test_acc), got {row}")
            rows.append(row)
    finally:
        model.load_state_dict(original)
    columns = [list(c) for c in zip(*rows)] if rows else [[], [], [], []]
    return InterpolationResult(alphas, *columns, labels=(str(labels[0]), str(labels[1])))


def to_dict(result: InterpolationResult) -> dict[str, Any]:
    """Plain lists, JSON-ready: non-finite losses (a blown-up end of the path) become None."""
    def clean(values: list[float]) -> list[float | None]:
        return [v if math.isfinite(v) else None for v in values]

    return {"alphas": list(result.alphas), "train_loss": clean(result.train_loss),
            "train_acc": clean(result.train_acc), "test_loss": clean(result.test_loss),
            "test_acc": clean(result.test_acc), "labels": list(result.labels)}


def to_json(result: InterpolationResult, path: str | Path | None = None) -> str:
    """:func:`to_dict` as strict JSON text (no NaN tokens); also written to ``path`` when given."""
    text = json.dumps(to_dict(result), indent=1, allow_nan=False)
    if path is not None:
        Path(path).write_text(text + "\n")
    return text


def from_dict(data: Mapping[str, Any]) -> InterpolationResult:
    """Inverse of :func:`to_dict` (None becomes NaN)."""
    def floats(values: list[float | None]) -> list[float]:
        return [math.nan if v is None else float(v) for v in values]

    return InterpolationResult([float(a) for a in data["alphas"]], floats(data["train_loss"]),
                               floats(data["train_acc"]), floats(data["test_loss"]), floats(data["test_acc"]),
                               labels=(str(data["labels"][0]), str(data["labels"][1])))


def plot_interpolation(result: InterpolationResult, path: str | Path) -> Path:
    """Loss (log scale, left axis) and accuracy (%, right axis) along α, to a PNG at ``path``.

    Train is solid, test dashed; α = 0 and α = 1 are marked with the two runs' labels.
    Non-positive or non-finite losses are left out of the log-scale curve.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    alphas = np.asarray(result.alphas, float)
    fig, loss_ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    acc_ax = loss_ax.twinx()
    loss_color, acc_color = "tab:blue", "tab:red"
    drawable = False
    for values, style, split in ((result.train_loss, "-", "train"), (result.test_loss, "--", "test")):
        loss = np.asarray(values, float)
        loss = np.where(np.isfinite(loss) & (loss > 0), loss, np.nan)
        drawable |= bool(np.isfinite(loss).any())
        loss_ax.plot(alphas, loss, style, color=loss_color, marker="o", ms=3, label=f"{split} loss")
    for values, style, split in ((result.train_acc, "-", "train"), (result.test_acc, "--", "test")):
        acc_ax.plot(alphas, 100 * np.asarray(values, float), style, color=acc_color, marker="s", ms=3,
                    label=f"{split} accuracy")
    if drawable:  # a log axis needs at least one positive value
        loss_ax.set_yscale("log")
    loss_ax.set_xlabel(r"interpolation coefficient α   ($\theta = (1-\alpha)\,\theta_A + \alpha\,\theta_B$)")
    loss_ax.set_ylabel("loss (log scale)", color=loss_color)
    loss_ax.tick_params(axis="y", colors=loss_color)
    acc_ax.set_ylabel("accuracy (%)", color=acc_color)
    acc_ax.tick_params(axis="y", colors=acc_color)
    acc_ax.set_ylim(-2, 102)
    loss_ax.grid(True, alpha=0.3)
    # Labels end at α = 0 and start at α = 1, so long run names never overlap.
    for alpha, name, label, align in ((0.0, "A", result.labels[0], "right"), (1.0, "B", result.labels[1], "left")):
        loss_ax.axvline(alpha, color="0.35", ls=":", lw=1)
        loss_ax.text(alpha, 1.01, f"{name} (α={alpha:g}): {label}", transform=loss_ax.get_xaxis_transform(),
                     ha=align, va="bottom", fontsize=9)
    handles = loss_ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=4, fontsize=9)
    fig.suptitle("Linear interpolation between two solutions", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
