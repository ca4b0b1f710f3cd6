"""The epoch loop: an optimizer (SGD, AdamW, the user's) with (B, ε, m) from a schedule, over a dataset in
memory or streamed.

It knows nothing of Ray or MLflow. It runs from a typed trial config
(:class:`scalestudy.trial.config.TrialConfig`) on one process or as one rank of a DDP group, and
yields one :class:`~scalestudy.trial.record.EpochReport` per epoch. ``state_dict()`` after a report is a complete checkpoint:
loading it and running on gives exactly the same trajectory as never stopping (data
order and augmentation are seeded per epoch; the global RNG state is saved).

Hot-path rules (DESIGN, issue 5): a dataset that fits lives on the device and batches are
index gathers; a larger one streams through a DataLoader that yields the same batches
(``batches.py``); metrics accumulate in device tensors and are read once per epoch. The task
(``scalestudy.tasks``) owns the loss and the metrics. Per-update work (the warmup's ε,
steps-to-target evaluations) runs only in the epochs that need it.

A little over 300 lines on purpose: the whole loop reads top to bottom in one file; one update
lives in ``step.py``, the batches in ``batches.py``, the rank's view in ``distributed.py``,
steps-to-target in ``target.py``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterator

import torch

from scalestudy.batching import micro_batch_size, penalty_block_size
from scalestudy.data import load_dataset
from scalestudy.data.base import InMemoryDataset
from scalestudy.data.inspect import check_finite
from scalestudy.data.stream import resident
from scalestudy.diagnostics.sharpness import sharpness_metrics
from scalestudy.models import build_model
from scalestudy.models.ghost_bn import batch_norm_layers, has_plain_batch_norm, running_stat_buffers
from scalestudy.models.precise_bn import recompute_running_stats
from scalestudy.noise import GradientNoiseScale, noise_scale
from scalestudy.optim import noise_scale_holds
from scalestudy.optim.builders import build_optimizer, can_set_momentum, set_momentum
from scalestudy.schedules import Hyper, hyper_at, update_lrs
from scalestudy.tasks import build_task, task_info
# EVAL_BATCH and rank_batch are also imported from here (benchmarks, tests).
from scalestudy.train.batches import EVAL_BATCH, MemoryBatches, StreamBatches, rank_batch, shard  # noqa: F401
from scalestudy.train.distributed import Distributed
from scalestudy.train.precision import autocast_for, uses_channels_last
from scalestudy.train.step import GradientStep
from scalestudy.train.target import Evaluation, TargetTracker
from scalestudy.trial.config import TrialConfig
from scalestudy.trial.record import EpochReport, trial_ended


def _seeded(seed: int, epoch: int, stream: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + epoch * 101 + stream) % (2**63))
    return generator


class EpochLoop:
    """One trial's training state and its epoch iterator."""

    def __init__(self, config: TrialConfig, dist: Distributed | None = None,
                 device: torch.device | str | None = None, data: InMemoryDataset | None = None) -> None:
        """``data``: a dataset already on the device, trained on instead of loading the workload's
        (benchmarks on data generated there); it must hold the config's ``dataset_size`` examples."""
        self.config = config
        workload = config.workload
        self.dist = dist or Distributed()
        self.device = torch.device(device or self.dist.device)
        self.schedule = config.schedule
        self.initial = Hyper(config.batch_size, config.lr, config.momentum)
        self.epochs = workload.epochs
        self.ghost_batch_size = workload.ghost_batch_size

        loading = workload.data
        if data is not None:
            if data.train_size != workload.dataset_size:
                raise ValueError(f"data holds {data.train_size} training examples, the trial config "
                                 f"{workload.dataset_size}")
        else:
            loaded = load_dataset(workload.dataset, workload.dataset_options, device="cpu",
                                  subset=workload.train_subset)  # N of a dataset scalestudy subsamples
            data = resident(loaded, loading.residency, loading.memory_limit_mb, loading.loader_workers)
        if isinstance(data, InMemoryDataset):
            self.data = data.to(self.device)
            self.batches = MemoryBatches(self.data, self.dist)
        else:
            self.data = data
            self.batches = StreamBatches(data, self.dist, self.device, loading.loader_workers, loading.prefetch_factor)
        self.task = build_task(workload.task)
        self.dataset_size = self.data.train_size
        # The same seed on every rank ⇒ identical initial weights (DDP also broadcasts them).
        torch.manual_seed(config.seed)
        model = build_model(workload.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes,
                            options=workload.model_options, ghost_batch_size=self.ghost_batch_size).to(self.device)
        self.channels_last = uses_channels_last(self.device, self.data.input_shape)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # Plain BN normalises over whatever batch it gets: the step is never split for it.
        self.plain_bn = has_plain_batch_norm(model)
        self.precise_bn = workload.precise_bn
        if self.precise_bn is not None and not batch_norm_layers(model):
            raise ValueError(f"precise_bn is set but model {workload.model!r} has no batch-norm layer")
        self.net = self.dist.wrap(model)
        self.optimizer = build_optimizer(config.optimizer, model.parameters(), config.lr, config.momentum,
                                         config.optimizer_options, nesterov=config.nesterov,
                                         weight_decay=config.weight_decay)
        # The momentum is set each epoch through the optimizer's hook (SGD's momentum, AdamW's β1); an
        # optimizer without one keeps the momentum it was built with (the spec refuses schedules changing it).
        self.momentum_settable = can_set_momentum(self.optimizer)
        self.noise_scale_holds = noise_scale_holds(config.optimizer)
        self.autocast = autocast_for(self.device)
        self.diagnostics = config.diagnostics
        self.penalty = workload.grad_penalty
        self.step = GradientStep(self.net, self.optimizer, lambda: self.dist.no_sync(self.net), self.autocast,
                                 clip_norm=workload.grad_clip_norm, penalty=self.penalty,
                                 measure_noise=self.diagnostics.gradient_noise_scale, dist=self.dist, task=self.task)
        self.target = TargetTracker.from_diagnostics(self.diagnostics, task_info(workload.task))
        self.noise = GradientNoiseScale(smoothing=0.5)  # one update per epoch, each already a mean over steps
        limit = workload.divergence_loss
        self.divergence_loss = float(limit) if limit is not None else self.task.divergence_loss(self.data.num_classes)
        self.eval_train_metrics = workload.train_metrics == "eval"
        if self.eval_train_metrics:  # a fixed training subset as large as the test set
            subset = min(self.data.train_size, self.data.test_size)
            shuffled = torch.randperm(self.data.train_size, generator=_seeded(config.seed, 0, 7, torch.device("cpu")))
            self.train_eval_index = shuffled[:subset].to(self.device)
        self.epoch = 0
        self.updates = 0
        self.examples_seen = 0
        self.history: list[dict[str, float]] = []

    # -- checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "updates": self.updates,
            "examples_seen": self.examples_seen,
            "history": list(self.history),
            "cpu_rng": torch.get_rng_state(),
            "gradient_noise": self.noise.state_dict(),
        }
        if self.target is not None:
            state["target"] = self.target.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.updates = state["epoch"], state["updates"]
        self.examples_seen, self.history = state["examples_seen"], list(state["history"])
        torch.set_rng_state(state["cpu_rng"])
        self.noise.load_state_dict(state["gradient_noise"])
        if self.target is not None and "target" in state:
            self.target.load_state_dict(state["target"])
        elif self.target is not None:  # a checkpoint from before in-epoch evaluations: its epoch ends
            for row in self.history:
                self.target.observe(Evaluation(int(row["updates"]), int(row["examples_seen"]), row[self.target.metric]))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    @property
    def finished(self) -> bool:
        """Planned epochs done, diverged, or the training-loss target reached (``trial_ended``)."""
        return self.epoch >= self.epochs or bool(self.history and trial_ended(self.config.workload, self.history[-1]))

    # -- training -----------------------------------------------------------------------
    def run(self) -> Iterator[EpochReport]:
        """Train the remaining epochs, yielding a report after each; stop on divergence or once the
        training loss reaches ``stop_at_train_loss``."""
        while not self.finished:
            report = self.train_epoch()
            self.history.append(report.metrics())
            yield report

    def _set_hyper(self, hyper: Hyper) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = hyper.lr
        if self.momentum_settable:
            set_momentum(self.optimizer, hyper.momentum)
        elif hyper.momentum != self.config.momentum:
            raise ValueError(f"optimizer {self.config.optimizer!r} has no momentum to set (epoch {self.epoch} wants "
                             f"m={hyper.momentum:g})")

    def train_epoch(self) -> EpochReport:
        start = time.perf_counter()
        hyper = hyper_at(self.schedule, self.initial, self.epoch)
        self._set_hyper(hyper)
        # None when every update trains at the epoch's ε (after warmup, without a per-update decay)
        lrs = update_lrs(self.schedule, self.initial, self.epoch, self.dataset_size, self.epochs)
        if self.target is not None and self.epoch == 0:
            self._evaluate_for_target(0, hyper.batch_size)  # the initial model, at update 0
        world = self.dist.world_size
        local = hyper.batch_size // world
        micro = self._micro_batch(local, hyper.batch_size)
        chunks = local // micro
        steps = self.dataset_size // hyper.batch_size  # drop the ragged tail: every step sees B examples
        evaluates = self.target is not None and self.target.evaluates_in_epoch(self.updates)
        per_update = None if lrs is None and not evaluates else _PerUpdate(self, hyper, lrs, evaluates)
        # Same permutation and augmentation draws on every rank; rank_batch takes each rank's slice.
        order = torch.randperm(self.dataset_size, generator=_seeded(self.config.seed, self.epoch, 1, self.device),
                               device=self.device)
        augment_gen = _seeded(self.config.seed, self.epoch, 2, self.device) if self.data.augment else None
        self.net.train()
        totals = torch.zeros(self.task.running_slots, device=self.device)  # the task's running sums
        views = totals.unbind()  # made once: indexing per step is an op per step
        first_batch = self.updates == 0
        for step, (inputs, targets) in enumerate(self.batches.train(order, hyper.batch_size, steps, augment_gen)):
            if per_update is not None:
                per_update(step)
            if self.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            self.step(inputs, targets, micro, chunks, views)
            if first_batch:
                first_batch = False
                self._check_first_batch(inputs, totals, order[self.dist.rank * local:(self.dist.rank + 1) * local])
        self.updates += steps
        self.examples_seen += steps * hyper.batch_size
        sums = self.dist.sum(totals.double()).tolist()  # the epoch's one host sync
        running = self.task.running_metrics(sums, world * steps * chunks, steps * hyper.batch_size)
        extras = {}
        # Small batch of the noise scale: this rank's pre-all-reduce gradient under DDP (B/W
        # examples), else the step's first micro-batch (no estimate when the step is not split).
        noise = self.step.noise_estimate(local if world > 1 else micro, hyper.batch_size, steps, self.dist)
        if noise is not None:
            self.noise.update_from(*noise)
        if noise is not None and self.noise.value is not None:
            extras["gradient_noise_scale"] = self.noise.value
        self._settle_bn_statistics(local, micro)
        self.epoch += 1
        if lrs is not None:
            hyper = Hyper(hyper.batch_size, sum(lrs) / len(lrs), hyper.momentum)
        return self._report(hyper, running, time.perf_counter() - start, extras)

    def _check_first_batch(self, inputs: torch.Tensor, totals: torch.Tensor, index: torch.Tensor) -> None:
        """A non-finite loss on the trial's first batch whose inputs are not finite is the data's fault: a
        :class:`DataError` naming the example (the trial fails), not a divergence. One host sync a trial."""
        if not bool(torch.isfinite(totals).all()):
            check_finite(self._data_name, "training", inputs, index.tolist())

    @property
    def _data_name(self) -> str:
        workload = self.config.workload
        return workload.dataset + (f" (its subsample of {workload.dataset_size})" if workload.train_subset else "")

    def _micro_batch(self, local: int, batch_size: int) -> int:
        """Examples per forward: the device limit, the penalty's blocks, and a split in two for the
        noise scale with one worker."""
        micro = micro_batch_size(local, self.config.workload.max_device_batch_size, self.ghost_batch_size)
        if self.step.block_penalty:  # the penalty's blocks are the micro-batches
            micro = penalty_block_size(batch_size, self.penalty.block_size)
        elif self.step.measure_noise and self.dist.world_size == 1 and micro == local and local > 1 \
                and not self.plain_bn:
            # Two batch sizes per step: halves hold whole ghost batches, so training is unchanged.
            micro = micro_batch_size(local, local // 2, self.ghost_batch_size) or local
        if self.plain_bn and micro != local:  # the spec refuses this; never change BN's batch silently
            raise ValueError(f"plain batch norm: per-worker batch {local} would be split into micro-batches of "
                             f"{micro}, which would change the BN batch; set ghost_batch_size")
        return micro

    def _settle_bn_statistics(self, local: int, micro: int) -> None:
        """Running statistics ready for evaluation and checkpoint: recomputed (precise BN), and
        averaged over ranks (each rank folds its own batches; see ``running_stats_step``)."""
        if self.precise_bn:
            with self.autocast:
                recompute_running_stats(self.model, self._precise_bn_batches(local, micro))
        self.dist.average_(running_stat_buffers(self.model))

    def _precise_bn_batches(self, local: int, micro: int) -> Iterator[torch.Tensor]:
        """A fixed, seeded set of training batches of B examples (this rank's slice, in forwards of
        ``micro``), the same at every evaluation of a given B: consecutive slices of seeded
        permutations of the training set. Not augmented: the statistics are for evaluation inputs."""
        batch = local * self.dist.world_size
        count = self.precise_bn.batches
        generator = _seeded(self.config.seed, 0, 3, self.device)
        passes = math.ceil(count * batch / self.dataset_size)
        order = torch.cat([torch.randperm(self.dataset_size, generator=generator, device=self.device)
                           for _ in range(passes)])
        for index in range(count):
            start = index * batch + self.dist.rank * local
            for offset in range(0, local, micro):
                inputs = self.batches.rows("train", order[start + offset:start + offset + micro])[0]
                yield inputs.contiguous(memory_format=torch.channels_last) if self.channels_last else inputs

    def _evaluate_for_target(self, steps_done: int, batch_size: int) -> None:
        """The target's test metric after ``steps_done`` updates of the epoch, for steps-to-target only.

        On every rank (the sharded evaluation is a collective); eval mode reads BN running
        statistics without changing them and draws no random numbers, so training goes on
        exactly as without the evaluation. The running statistics are settled first (averaged over
        ranks, or recomputed by precise BN), as before an epoch's evaluation; training mode reads none.
        """
        local = batch_size // self.dist.world_size
        self._settle_bn_statistics(local, self._micro_batch(local, batch_size))
        value = self.evaluate_batches(self.batches.evaluation("test"))[self.target.metric.removeprefix("test_")]
        self.net.train()
        self.target.observe(Evaluation(self.updates + steps_done, self.examples_seen + steps_done * batch_size,
                                       value))

    @torch.no_grad()
    def evaluate_batches(self, batches) -> dict[str, float]:
        """Eval-mode (running BN statistics) metrics of the task (``loss``, ``acc``, ...) over this rank's
        batches, summed over ranks."""
        self.net.eval()
        totals = torch.zeros(self.task.eval_slots, device=self.device, dtype=torch.float64)
        for x, y in batches:
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast:
                outputs = self.model(x)
            totals += self.task.eval_sums(outputs, y)
        return self.task.eval_metrics(self.dist.sum(totals).tolist())

    def evaluate(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        """Eval-mode loss and accuracy of the given examples (NaN accuracy for a task without one)."""
        metrics = self.evaluate_batches(shard(inputs, targets, self.dist))
        return metrics["loss"], metrics.get("acc", math.nan)

    def _report(self, hyper: Hyper, running: dict[str, float], train_seconds: float,
                extras: dict[str, float]) -> EpochReport:
        start = time.perf_counter()
        test = self.evaluate_batches(self.batches.evaluation("test"))
        train = running
        if self.eval_train_metrics:
            train = self.evaluate_batches(self.batches.evaluation("train", self.train_eval_index))
        running_loss, train_loss = running["loss"], train["loss"]
        if not math.isfinite(running_loss) and isinstance(self.data, InMemoryDataset):
            # A NaN in any training input makes the loss NaN: the data's fault (a DataError), not divergence.
            check_finite(self._data_name, "training", self.data.train_x)
        diverged = not math.isfinite(running_loss) or running_loss > self.divergence_loss
        if self.target is not None:
            self.target.observe(Evaluation(self.updates, self.examples_seen, test[self.target.metric.removeprefix("test_")]))
            self.target.read_noise_scale(extras.get("gradient_noise_scale"))  # B_simple at the crossing's epoch
            extras.update(self.target.metrics())
        task_metrics = {**self.task.report_metrics(train, test),
                        **self.task.batch_metrics(hyper.batch_size, self.data.input_shape)}
        last = {"epoch": self.epoch, "train_loss": train_loss, "diverged": diverged}
        if not diverged and self.diagnostics.sharpness is not None and trial_ended(self.config.workload, last):
            extras.update(self._final_sharpness())
        return EpochReport(
            epoch=self.epoch, updates=self.updates, examples_seen=self.examples_seen,
            batch_size=hyper.batch_size, lr=hyper.lr, momentum=hyper.momentum,
            effective_lr=hyper.effective_lr,
            # SGD's temperature (noise.py): for another optimizer it means nothing, so NaN (optim.noise_scale_holds).
            noise_scale=noise_scale(hyper.lr, hyper.momentum, self.dataset_size, hyper.batch_size)
            if self.noise_scale_holds else math.nan,
            train_loss=train_loss, train_acc=task_metrics.pop("train_acc", None), test_loss=test["loss"],
            test_acc=task_metrics.pop("test_acc", None), gen_gap=task_metrics.pop("gen_gap", None),
            running_loss=running_loss, epoch_seconds=train_seconds + time.perf_counter() - start,
            diverged=int(diverged), extras=extras, task_metrics=task_metrics,
        )


    def _final_sharpness(self) -> dict[str, float]:
        """Keskar ε-sharpness of the final weights on a fixed training subset (eval mode, float32:
        bf16 resolves losses to ~0.4 %, too coarse for ε ≈ 1e-3)."""
        options = self.diagnostics.sharpness
        count = min(options.examples, self.data.train_size)
        inputs, targets = self.batches.rows("train", torch.arange(count, device=self.device))
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        loss = None if self.config.workload.task == "classification" else self.task.loss
        return sharpness_metrics(self.model, inputs, targets, epsilon=options.epsilon,
                                 subspace_dims=options.subspace_dims, steps=options.steps, seed=self.config.seed,
                                 batch=EVAL_BATCH, loss=loss)


class _PerUpdate:
    """Work before some updates of an epoch: the ε of every update (warmup, a per-update decay), steps-to-target
    evaluations."""

    def __init__(self, loop: EpochLoop, hyper: Hyper, lrs: list[float] | None, evaluates: bool) -> None:
        self.loop, self.batch_size, self.lrs, self.evaluates = loop, hyper.batch_size, lrs, evaluates
        self.groups = loop.optimizer.param_groups
        self.first_epoch = loop.updates == 0

    def __call__(self, step: int) -> None:
        if self.lrs is not None:
            for group in self.groups:
                group["lr"] = self.lrs[step]
        # Step 0 follows the previous evaluation (the initial model's, or the last epoch end's).
        if self.evaluates and step and self.loop.target.evaluates_at(self.loop.updates + step, self.first_epoch):
            self.loop._evaluate_for_target(step, self.batch_size)
