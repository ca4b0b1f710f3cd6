"""One optimizer update: gradient accumulation, gradient noise, penalty, clipping.

Everything stays on the device: norms are accumulated in tensors and read by the loop
once per epoch, never per step.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F

from scalestudy.models.ghost_bn import frozen_bn_stats, running_stats_step
from scalestudy.noise import estimate_gradient_noise


def _squared_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(torch._foreach_norm(tensors)).float().pow(2).sum() if tensors else torch.zeros(())


class GradientStep:
    """Computes the global-batch gradient and applies one SGD update.

    * Micro-batches: the local batch is split into ``chunks`` equal micro-batches whose
      gradients are accumulated; under DDP only the last one all-reduces (``no_sync``).
    * Batch-norm running statistics: the step's forwards are one ``running_stats_step``
      (ghost batches folded in global order across ranks); other forwards are frozen.
    * Gradient noise scale (McCandlish et al. 2018): |G|² of a small batch and of the whole
      step (``B`` examples, all-reduced) give unbiased estimates of |G|² and tr(Σ)
      (``noise.py``). The small batch is, under DDP, this rank's local gradient before the
      all-reduce (B/W examples, read by a communication hook, as McCandlish et al. do), and
      with one worker the first micro-batch of the step.
    * Gradient-norm penalty (Geiping et al. 2021): the gradient of
      L + (λ/2)·|∇L|² is ∇L + λ·H∇L; H∇L comes from a finite difference of gradients
      at θ and θ + h·∇L, so it costs one more forward/backward pass and no double
      backward (which DDP does not support).
    * Clipping of the global gradient norm, after the penalty.
    """

    def __init__(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 no_sync: Callable[[], contextlib.AbstractContextManager], autocast,
                 clip_norm: float | None = None, penalty: float = 0.0, measure_noise: bool = False,
                 rank: int = 0, world_size: int = 1) -> None:
        self.net = net
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.no_sync = no_sync
        self.autocast = autocast
        self.clip_norm = clip_norm
        self.penalty = penalty
        self.measure_noise = measure_noise
        self.rank, self.world_size = rank, world_size
        device = self.params[0].device
        self.noise_sums = torch.zeros(2, device=device)  # Σ |G_small|², Σ |G_B|² over the epoch's steps
        self._local_norm = None
        if measure_noise and world_size > 1:
            self._local_norm = _LocalGradientNorm(self.noise_sums)
            net.register_comm_hook(self._local_norm, _local_norm_then_allreduce)

    def _grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.params if p.grad is not None]

    def accumulate(self, inputs: torch.Tensor, targets: torch.Tensor, micro: int, chunks: int,
                   totals: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Backward over all micro-batches; ``totals`` (two 0-d views) get summed losses and correct counts."""
        # Small batches are bound by per-op overhead: no slicing or scaling when there is one chunk.
        for chunk in range(chunks):
            x, y = (inputs, targets) if chunks == 1 else (inputs[chunk * micro:(chunk + 1) * micro],
                                                          targets[chunk * micro:(chunk + 1) * micro])
            sync = self.no_sync() if chunk < chunks - 1 else contextlib.nullcontext()
            with sync, self.autocast:
                logits = self.net(x)
                loss = F.cross_entropy(logits, y)
                (loss / chunks if chunks > 1 else loss).backward()
            if totals is not None:
                loss_sum, correct = totals
                loss_sum.add_(loss.detach())
                correct.add_((logits.detach().argmax(1) == y).sum())
                if self.measure_noise and self._local_norm is None and chunk == 0 and chunks > 1:
                    self.noise_sums[0] += _squared_norm(self._grads()) * chunks**2

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, micro: int, chunks: int,
                 totals: tuple[torch.Tensor, torch.Tensor]) -> None:
        with running_stats_step(self.net, self.rank, self.world_size), self._reading_local_norm():
            self.accumulate(inputs, targets, micro, chunks, totals)
        if self.measure_noise:
            self.noise_sums[1] += _squared_norm(self._grads())
        if self.penalty > 0:
            with frozen_bn_stats(self.net):  # the perturbed pass is not a step: no running-stat update
                self._add_penalty(inputs, targets, micro, chunks)
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def _perturb(self, direction: list[torch.Tensor], scale: torch.Tensor) -> None:
        torch._foreach_add_([p for p in self.params if p.grad is not None], torch._foreach_mul(direction, scale))

    def _add_penalty(self, inputs, targets, micro: int, chunks: int) -> None:
        grads = [g.detach().clone() for g in self._grads()]
        # A step of relative size 1e-2 along ∇L: small enough for a good difference
        # quotient, large enough above float round-off.
        h = 1e-2 / (_squared_norm(grads).sqrt() + 1e-12)
        self._perturb(grads, h)
        self.optimizer.zero_grad(set_to_none=False)
        with torch.enable_grad():
            self.accumulate(inputs, targets, micro, chunks, None)
        self._perturb(grads, -h)
        with torch.no_grad():
            for g_now, g in zip(self._grads(), grads):
                # g_now ≈ g + h·Hg  ⇒  g + λ·Hg = g + (λ/h)·(g_now − g)
                g_now.sub_(g).mul_(self.penalty / h).add_(g)

    def _reading_local_norm(self) -> contextlib.AbstractContextManager:
        """Arm the hook for the step's own all-reduce only (not a penalty pass's)."""
        return self._local_norm.armed() if self._local_norm is not None else contextlib.nullcontext()

    def noise_estimate(self, small_batch: int, batch_size: int, steps: int, dist) -> tuple[float, float] | None:
        """(|G|², tr Σ) from this epoch's sums (averaged over steps and ranks), then reset.

        ``small_batch``: examples behind each |G_small|² (B/W under DDP, else the micro-batch).
        None unless two real batch sizes were measured: never an estimate from one.
        """
        sums = self.noise_sums.to(torch.float64, copy=True)
        self.noise_sums.zero_()
        if not self.measure_noise or small_batch >= batch_size or steps == 0:  # the same on every rank
            return None
        small, big = (dist.sum(sums) / (steps * dist.world_size)).tolist()
        estimate = estimate_gradient_noise(small, small_batch, big, batch_size)
        return estimate.grad_sq, estimate.trace_sigma


class _LocalGradientNorm:
    """DDP communication-hook state: adds |local gradient|² (before the all-reduce) to ``sums[0]``.

    Each bucket holds this rank's gradient of its parameters, accumulated over the step's
    micro-batches (``no_sync`` keeps them in ``.grad`` until the last backward), so the sum of
    squared bucket norms over one all-reduce is |G_local|² over the B/W local examples.
    """

    def __init__(self, sums: torch.Tensor) -> None:
        self.sums = sums
        self.reading = False

    @contextlib.contextmanager
    def armed(self):
        self.reading = True
        try:
            yield
        finally:
            self.reading = False


def _local_norm_then_allreduce(state: _LocalGradientNorm, bucket):
    # Imported here: only DDP runs need it, and builds without torch.distributed lack it.
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    if state.reading:
        state.sums[0] += torch.linalg.vector_norm(bucket.buffer()).float().square()
    return allreduce_hook(None, bucket)  # DDP's own averaging all-reduce
