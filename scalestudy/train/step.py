"""One optimizer update: gradient accumulation, gradient noise, penalty, clipping.

Everything stays on the device: norms are accumulated in tensors and read by the loop
once per epoch, never per step.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterator

import torch

from scalestudy.models.ghost_bn import frozen_bn_stats, running_stats_step
from scalestudy.noise import estimate_gradient_noise
from scalestudy.tasks.classification import Classification

if TYPE_CHECKING:
    from scalestudy.spec import GradPenalty
    from scalestudy.tasks.base import Task
    from scalestudy.train.distributed import Distributed


def _squared_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(torch._foreach_norm(tensors)).float().pow(2).sum() if tensors else torch.zeros(())


@contextlib.contextmanager
def _exact_float32(device: torch.device) -> Iterator[None]:
    """No TF32 on CUDA: a finite difference of gradients needs their full float32 precision."""
    if device.type != "cuda":
        yield
        return
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


class GradientStep:
    """Computes the global-batch gradient and applies one SGD update.

    * The loss and the running metric sums are the task's (``scalestudy.tasks``).

    * Micro-batches: the local batch is split into ``chunks`` equal micro-batches whose
      gradients are accumulated; under DDP only the last one all-reduces (``no_sync``).
    * Batch-norm running statistics: the step's forwards are one ``running_stats_step``
      (ghost batches folded in global order across ranks); other forwards are frozen.
    * Gradient noise scale (McCandlish et al. 2018): |G|² of a small batch and of the whole
      step (``B`` examples, all-reduced) give unbiased estimates of |G|² and tr(Σ)
      (``noise.py``). The small batch is, under DDP, this rank's local gradient before the
      all-reduce (B/W examples, read by a communication hook, as McCandlish et al. do), and
      with one worker the first micro-batch of the step.
    * Gradient-norm penalty (``spec.GradPenalty``), its Hessian-vector products from a
      forward difference of gradients (one more forward/backward pass, no double backward,
      which DDP does not support), all passes in float32, the perturbed pass with BN running
      statistics frozen:
      ``geiping_blocks`` (Geiping et al. 2021) treats each micro-batch as a block and
      ``full_gradient`` the whole batch; see ``_geiping_blocks`` and ``_add_penalty``.
    * Clipping of the global gradient norm, after the penalty.
    """

    def __init__(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 no_sync: Callable[[], contextlib.AbstractContextManager], autocast,
                 clip_norm: float | None = None, penalty: GradPenalty | None = None, measure_noise: bool = False,
                 dist: Distributed | None = None, task: Task | None = None) -> None:
        self.net = net
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.no_sync = no_sync
        self.autocast = autocast
        self.task = task if task is not None else Classification()
        self.clip_norm = clip_norm
        self.penalty = penalty
        self.block_penalty = penalty is not None and penalty.kind == "geiping_blocks"
        if penalty is not None:
            self.autocast = contextlib.nullcontext()  # see _penalised_gradient
        self.dist = dist
        self.rank, self.world_size = (dist.rank, dist.world_size) if dist is not None else (0, 1)
        self.measure_noise = measure_noise
        device = self.params[0].device
        self.noise_sums = torch.zeros(2, device=device)  # Σ |G_small|², Σ |G_B|² over the epoch's steps
        self._local_norm = None
        if measure_noise and self.world_size > 1:
            self._local_norm = _LocalGradientNorm(self.noise_sums)
            net.register_comm_hook(self._local_norm, _local_norm_then_allreduce)

    def _grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.params if p.grad is not None]

    def accumulate(self, inputs: torch.Tensor, targets: torch.Tensor, micro: int, chunks: int,
                   totals: tuple[torch.Tensor, ...] | None) -> None:
        """Backward over all micro-batches; ``totals`` (0-d views) get the task's running sums."""
        # Small batches are bound by per-op overhead: no slicing or scaling when there is one chunk.
        for chunk in range(chunks):
            x, y = (inputs, targets) if chunks == 1 else (inputs[chunk * micro:(chunk + 1) * micro],
                                                          targets[chunk * micro:(chunk + 1) * micro])
            sync = self.no_sync() if chunk < chunks - 1 else contextlib.nullcontext()
            with sync, self.autocast:
                outputs = self.net(x)
                loss = self.task.loss(outputs, y)
                (loss / chunks if chunks > 1 else loss).backward()
            if totals is not None:
                self.task.add_running(totals, outputs.detach(), y, loss.detach())
                if self.measure_noise and self._local_norm is None and chunk == 0 and chunks > 1:
                    self.noise_sums[0] += _squared_norm(self._grads()) * chunks**2

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, micro: int, chunks: int,
                 totals: tuple[torch.Tensor, ...]) -> None:
        # The penalty's passes run in float32 (it turns autocast off): bf16 rounding (~0.4 %)
        # would swamp the difference of two gradients a small step apart.
        exact = _exact_float32(inputs.device) if self.penalty is not None else contextlib.nullcontext()
        with exact:
            with running_stats_step(self.net, self.rank, self.world_size), self._reading_local_norm():
                if self.block_penalty:
                    self._geiping_blocks(inputs, targets, micro, chunks, totals)
                else:
                    self.accumulate(inputs, targets, micro, chunks, totals)
            if self.measure_noise:  # of the loss gradient, before any full-gradient penalty
                self.noise_sums[1] += _squared_norm(self._grads())
            if self.penalty is not None and not self.block_penalty:
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
        """``full_gradient``: g ← g + λ·H·g, the gradient of L + (λ/2)·|g|² over the whole batch."""
        grads = [g.detach().clone() for g in self._grads()]
        # A step of length fd_step along ∇L: small enough for a good difference quotient,
        # large enough above float round-off.
        h = self.penalty.fd_step / (_squared_norm(grads).sqrt() + 1e-12)
        self._perturb(grads, h)
        self.optimizer.zero_grad(set_to_none=False)
        with torch.enable_grad():
            self.accumulate(inputs, targets, micro, chunks, None)
        self._perturb(grads, -h)
        with torch.no_grad():
            for g_now, g in zip(self._grads(), grads):
                # g_now ≈ g + h·Hg  ⇒  g + λ·Hg = g + (λ/h)·(g_now − g)
                g_now.sub_(g).mul_(self.penalty.strength / h).add_(g)

    def _block_gradient(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward of one block's mean loss into ``.grad`` (local: no DDP all-reduce); (loss, outputs)."""
        with self.no_sync():
            outputs = self.net(x)
            loss = self.task.loss(outputs, y)
            loss.backward()
        return loss.detach(), outputs.detach()

    def _geiping_blocks(self, inputs, targets, block: int, blocks: int,
                        totals: tuple[torch.Tensor, ...]) -> None:
        """``geiping_blocks``: the mean over blocks k of g_k + (ε·λ/4)·H_k·g_k.

        Geiping et al. 2021 (arXiv:2109.14119), code github.com/JonasGeiping/fullbatchtraining,
        ``fullbatch/models/modules.py``, ``GradRegularizer._forward_differences`` (config
        ``hyp/gradreg.yaml``: block_strength λ = 0.5, eps 1e-2, blocks of ``sub_batch`` = 128):
        v = λ·g_k, h = eps/|v| (our fd_step is their eps), H_k·v ≈ (∇L_k(θ + h·v) − g_k)/h, then
        g_k + (ε/4)·H_k·v with ε the optimizer's current learning rate. That is the gradient of
        L_k + (ε·λ/8)·|g_k|² (their logged ``full_loss`` counts the penalty as (ε·λ/4)·mean|g_k|²,
        twice what their update differentiates; we follow the update). Blocks are local (no DDP all-reduce in their passes); the penalised
        mean is all-reduced once at the end.
        """
        coefficient = self.optimizer.param_groups[0]["lr"] / 4
        strength, fd_step = self.penalty.strength, self.penalty.fd_step
        mean: list[torch.Tensor] | None = None
        originals: list[torch.Tensor] | None = None  # θ, restored exactly after each perturbed pass
        for k in range(blocks):
            x, y = (inputs, targets) if blocks == 1 else (inputs[k * block:(k + 1) * block],
                                                          targets[k * block:(k + 1) * block])
            self.optimizer.zero_grad(set_to_none=True)
            loss, outputs = self._block_gradient(x, y)
            self.task.add_running(totals, outputs, y, loss)
            params = [p for p in self.params if p.grad is not None]
            grads = [p.grad for p in params]
            h = fd_step / (strength * _squared_norm(grads).sqrt() + 1e-30)
            if originals is None:
                originals = [p.detach().clone() for p in params]
            with torch.no_grad():
                torch._foreach_add_(params, torch._foreach_mul(grads, h * strength))
            for p in params:
                p.grad = None
            with frozen_bn_stats(self.net):
                self._block_gradient(x, y)
            with torch.no_grad():
                for p, original in zip(params, originals):
                    p.copy_(original)  # exact, where subtracting the step again would leave round-off
                shifted = [p.grad for p in params]
                torch._foreach_sub_(shifted, grads)  # ≈ h·H_k·v
                torch._foreach_mul_(shifted, coefficient / h)
                torch._foreach_add_(shifted, grads)
                if mean is None:
                    mean = torch._foreach_div(shifted, blocks)
                else:
                    torch._foreach_add_(mean, shifted, alpha=1 / blocks)
        for p, g in zip(params, mean):
            p.grad = g
        if self.dist is not None and self.dist.is_distributed:
            flat = self.dist.sum(torch.cat([g.reshape(-1) for g in mean])) / self.dist.world_size
            torch._foreach_copy_(mean, [part.view_as(g) for part, g in zip(flat.split([g.numel() for g in mean]),
                                                                           mean)])

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
