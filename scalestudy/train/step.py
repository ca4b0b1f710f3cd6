"""One optimizer update: gradient accumulation, gradient noise, penalty, clipping.

Everything stays on the device: norms are accumulated in tensors and read by the loop
once per epoch, never per step.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F

from scalestudy.noise import estimate_gradient_noise


def _squared_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(torch._foreach_norm(tensors)).float().pow(2).sum() if tensors else torch.zeros(())


class GradientStep:
    """Computes the global-batch gradient and applies one SGD update.

    * Micro-batches: the local batch is split into ``chunks`` equal micro-batches whose
      gradients are accumulated; under DDP only the last one all-reduces (``no_sync``).
    * Gradient noise scale (McCandlish et al. 2018): |G|² of the first micro-batch of
      the step (``micro`` examples, local) and of the whole step (``B`` examples,
      all-reduced) give unbiased estimates of |G|² and tr(Σ) (``noise.py``).
    * Gradient-norm penalty (Geiping et al. 2021): the gradient of
      L + (λ/2)·|∇L|² is ∇L + λ·H∇L; H∇L comes from a finite difference of gradients
      at θ and θ + h·∇L, so it costs one more forward/backward pass and no double
      backward (which DDP does not support).
    * Clipping of the global gradient norm, after the penalty.
    """

    def __init__(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 no_sync: Callable[[], contextlib.AbstractContextManager], autocast,
                 clip_norm: float | None = None, penalty: float = 0.0, measure_noise: bool = False) -> None:
        self.net = net
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.no_sync = no_sync
        self.autocast = autocast
        self.clip_norm = clip_norm
        self.penalty = penalty
        self.measure_noise = measure_noise
        device = self.params[0].device
        self.noise_sums = torch.zeros(2, device=device)  # Σ |G_micro|², Σ |G_B|² over the epoch's steps

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
                if self.measure_noise and chunk == 0 and chunks > 1:
                    self.noise_sums[0] += _squared_norm(self._grads()) * chunks**2

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, micro: int, chunks: int,
                 totals: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.accumulate(inputs, targets, micro, chunks, totals)
        if self.measure_noise:
            self.noise_sums[1] += _squared_norm(self._grads())
        if self.penalty > 0:
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

    def noise_estimate(self, micro: int, batch_size: int, steps: int, dist) -> tuple[float, float] | None:
        """(|G|², tr Σ) from this epoch's sums (averaged over steps and ranks), then reset."""
        sums, self.noise_sums = self.noise_sums, torch.zeros_like(self.noise_sums)
        if not self.measure_noise or micro >= batch_size or steps == 0:
            return None
        small, big = (dist.sum(sums.double()) / (steps * dist.world_size)).tolist()
        estimate = estimate_gradient_noise(small, micro, big, batch_size)
        return estimate.grad_sq, estimate.trace_sigma
