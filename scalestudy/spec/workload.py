"""What one trial trains and measures: the workload, its schedule, the diagnostics.

These frozen models are also the typed pieces of a trial's config
(:class:`scalestudy.trial.config.TrialConfig`), so a trial reads exactly what the spec validated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from scalestudy import data, models, optim, tasks
from scalestudy.schedules import PER_UPDATE_DECAY, SCHEDULES
from scalestudy.spec.base import Frozen

MAX_EPOCHS = 100_000


class PreciseBN(Frozen):
    """Recompute the BN running statistics before each evaluation (Wu & Johnson 2021)."""

    # Training batches of the epoch's per-worker batch size (a fixed, seeded set) to average over.
    batches: int = Field(gt=0)
class GradPenalty(Frozen):
    """The explicit gradient-norm regulariser of the full-batch recipe.

    * ``geiping_blocks`` (Geiping et al. 2021, their ``GradRegularizer``, forward differences):
      the batch is split into blocks of ``block_size`` examples and each block's gradient g_k
      becomes g_k + (ε·strength/4)·H_k·g_k, ε the learning rate of the update; the update
      averages the blocks. That is the gradient of L_k + (ε·strength/8)·|g_k|².
    * ``full_gradient``: the batch's gradient g becomes g + strength·H·g, the gradient of
      L + (strength/2)·|g|², a fixed strength and no learning-rate scaling.

    H·v comes from a forward difference of gradients at θ and θ + (fd_step/|v|)·v.
    """

    kind: Literal["geiping_blocks", "full_gradient"] = "geiping_blocks"
    strength: float = Field(default=0.5, gt=0)  # λ; Geiping et al.'s ``block_strength`` (config hyp/gradreg)
    block_size: int | None = Field(default=None, gt=0)  # examples per block; geiping_blocks only (default 128)
    fd_step: float = Field(default=1e-2, gt=0)  # length of the finite-difference step in parameter space

    @model_validator(mode="before")
    @classmethod
    def _blocks_for_geiping_only(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        if raw.get("kind", "geiping_blocks") == "geiping_blocks":
            # Geiping et al.'s blocks: their data.batch_size of 128 (hyp.sub_batch is also 128).
            return raw if raw.get("block_size") is not None else {**raw, "block_size": 128}
        if raw.get("block_size") is not None:
            raise ValueError("block_size: only for kind geiping_blocks (full_gradient penalises the "
                             "gradient of the whole batch)")
        return raw


class DataLoading(Frozen):
    """Where a trial's training data lives: on the device whole (batches are index gathers), or
    streamed through a DataLoader driven by scalestudy's own batch sampler. Both paths train on the
    same examples in the same order (``scalestudy.data.stream``)."""

    # auto: in memory when both splits take at most memory_limit_mb, streamed otherwise.
    residency: Literal["auto", "memory", "stream"] = "auto"
    memory_limit_mb: float = Field(default=2048.0, gt=0)
    # DataLoader worker processes per trial worker (0: load in the trial's own process).
    loader_workers: int = Field(default=0, ge=0, le=64)
    prefetch_factor: int = Field(default=2, gt=0)  # batches each loader worker prepares ahead


class Workload(Frozen):
    dataset: str = "mnist1d"
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    model: str = "mlp"
    model_options: dict[str, Any] = Field(default_factory=dict)
    # What is minimised and reported: classification | language_model | package.module:attribute.
    task: str = "classification"
    data: DataLoading = Field(default_factory=DataLoading)
    epochs: int = Field(gt=0, le=MAX_EPOCHS)  # every epoch of every schedule is checked up front
    ghost_batch_size: int | None = Field(default=None, gt=0)
    max_device_batch_size: int | None = Field(default=None, gt=0)
    divergence_loss: float | None = Field(default=None, gt=0)
    # eval: an eval-mode pass over a fixed training subset as large as the test set, the clean
    # counterpart of the test metrics (the generalization gap compares the two), at the cost of one
    # more evaluation per epoch; running: train-mode loss/accuracy accumulated over the epoch's
    # batches while the weights change (free, but lower than the final weights score: the gap
    # reads negative). Configs stored before this setting read as running, what they ran with.
    train_metrics: Literal["running", "eval"] = "eval"
    # Full-batch recipes (Geiping et al. 2021): clip the global gradient norm (after the
    # penalty), and add an explicit gradient-norm regulariser.
    grad_clip_norm: float | None = Field(default=None, gt=0)
    grad_penalty: GradPenalty | None = None
    precise_bn: PreciseBN | None = None
    # End the trial once an epoch's training loss (train_metrics decides which: running or eval)
    # is at or below this; `epochs` is then the most it trains. Compares batch sizes at equal
    # training loss (Keskar et al.'s gap and sharpness) instead of at equal epochs.
    stop_at_train_loss: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _nqm_is_one_workload(cls, raw: Any) -> Any:
        # The noisy quadratic model's data, model and task only make sense together: model nqm implies the rest.
        if not isinstance(raw, dict) or "nqm" not in (raw.get("dataset"), raw.get("model"), raw.get("task")):
            return raw
        raw = {"dataset": "nqm", "model": "nqm", "task": "nqm", **raw}
        other = [f"{key}: {raw[key]}" for key in ("dataset", "model", "task") if raw[key] != "nqm"]
        if other:
            raise ValueError(f"{', '.join(other)}: the noisy quadratic model is dataset, model and task nqm together "
                             "(write model: nqm alone)")
        return raw

    @model_validator(mode="before")
    @classmethod
    def _renamed_penalty(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "grad_norm_penalty" in raw:
            raise ValueError(
                "grad_norm_penalty: replaced by grad_penalty; write grad_penalty: {kind: full_gradient, "
                f"strength: {raw['grad_norm_penalty']}}} for the same penalty, or grad_penalty: "
                "{kind: geiping_blocks, strength: 0.5, block_size: 128} for Geiping et al.'s")
        return raw

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        return data.DATASETS.check(name)

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return models.MODELS.check(name)

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        return tasks.TASKS.check(name)



class Optimizer(Frozen):
    """The optimizer of every trial: ``sgd`` (default), ``adamw`` (the momentum axis is β1), or the user's
    own by import path (``build(params, lr, momentum, **options) -> torch.optim.Optimizer``)."""

    name: str = "sgd"
    options: dict[str, Any] = Field(default_factory=dict)  # checked against the optimizer (spec.checks)

    @field_validator("name")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        return optim.OPTIMIZERS.check(name)


class Schedule(Frozen):
    kind: str = "constant"
    milestones: list[int] = Field(default_factory=list)
    factor: float = Field(default=5.0, gt=1)
    max_batch_size: int | None = Field(default=None, gt=0)
    warmup_epochs: int = Field(default=0, ge=0)
    momentum_factor: float = Field(default=2.0, gt=1)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        return SCHEDULES.check(kind)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, values: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"must be strictly increasing, got {values}")
        if any(v <= 0 for v in values):
            raise ValueError(f"must be epochs > 0, got {values}")
        return values

    @model_validator(mode="after")
    def _hybrid_needs_max(self) -> "Schedule":
        if self.kind == "hybrid" and self.max_batch_size is None:
            raise ValueError("max_batch_size: required for kind hybrid")
        return self

    @model_validator(mode="after")
    def _per_update_decay_has_no_milestones(self) -> "Schedule":
        # A cosine decays every update to 0 at the end of the run: milestones or a maximum batch
        # would be silently ignored, so they are refused.
        if self.kind in PER_UPDATE_DECAY and (self.milestones or self.max_batch_size is not None):
            raise ValueError(f"milestones, max_batch_size: kind {self.kind} decays ε every update over the whole "
                             "run and has neither; leave them out")
        return self



class Sharpness(Frozen):
    """Keskar et al. 2017 ε-sharpness of the final solution, on a fixed training subset."""

    epsilon: float = Field(default=1e-3, gt=0)
    # Always in the full parameter space (metric "sharpness"); also in a random subspace of
    # this many dimensions (metric "sharpness_subspace") unless null.
    subspace_dims: int | None = Field(default=100, gt=0)
    steps: int = Field(default=10, gt=0)
    examples: int = Field(default=2048, gt=0)


class Target(Frozen):
    """Steps to target on any test metric of the task: reached when the metric first gets to
    ``value`` in its direction (at or above a maximised one, at or below a minimised one)."""

    metric: str = Field(pattern=r"^test_")  # a test metric: the evaluations are of the test set
    value: float


class Diagnostics(Frozen):
    gradient_noise_scale: bool = False  # B_simple per epoch (McCandlish et al. 2018)
    sharpness: Sharpness | None = None
    target_accuracy: float | None = Field(default=None, gt=0, le=1)  # steps-to-target (Shallue et al. 2018)
    # The same on another metric (target_accuracy: x is target: {metric: test_acc, value: x}).
    target: Target | None = None
    # Also evaluate the test accuracy every this many updates inside epochs (updates_to_target is
    # interpolated between the evaluations around the crossing); null: the epoch ends only.
    target_eval_every: int | None = Field(default=None, gt=0)
    # Evaluate inside an epoch only while the last evaluated accuracy is within this much of the
    # target (the first epoch also at K, 2K, 4K, …: scalestudy.train.target); null: from the start.
    target_eval_margin: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _target_options_need_a_target(self) -> "Diagnostics":
        if self.target is not None and self.target_accuracy is not None:
            raise ValueError("target: give target or target_accuracy (its shortcut for test_acc), not both")
        for name in ("target_eval_every", "target_eval_margin"):
            if getattr(self, name) is not None and self.steps_target is None:
                raise ValueError(f"{name}: needs target_accuracy or target")
        if self.target_eval_margin is not None and self.target_eval_every is None:
            raise ValueError("target_eval_margin: needs target_eval_every")
        return self

    @property
    def steps_target(self) -> Target | None:
        """The steps-to-target metric and value (``target_accuracy`` is test_acc's shortcut)."""
        if self.target_accuracy is not None:
            return Target(metric="test_acc", value=self.target_accuracy)
        return self.target

