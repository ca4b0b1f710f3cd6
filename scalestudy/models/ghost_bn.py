"""Ghost batch normalisation (Hoffer et al. 2017): batch statistics per ghost batch of G samples.

A local batch of b = k·G samples is normalised as k independent batches of G samples each,
so the noise that batch statistics inject stays that of a batch of G even when B grows
(DESIGN decision 4). The k ghost batches are handled in one vectorised pass (``ghost_bn_function``).

Running statistics (Hoffer et al. 2017, Algorithm 1): every ghost batch is folded in as if it were
its own ``nn.BatchNorm`` call, in order. With momentum η, k ghost batches with per-ghost mean and
unbiased variance s_0 … s_{k−1} give
    R ← (1−η)^k·R + Σ_j η(1−η)^(k−1−j)·s_j,
exactly k sequential ``nn.BatchNorm`` updates (momentum None: the cumulative average over every
ghost batch seen, as ``nn.BatchNorm``), and ``num_batches_tracked`` counts ghost batches. The fold
is sequential rather than order-free (equal weights 1−(1−η)^k over the k batches), because only
the sequential form equals k ``nn.BatchNorm`` calls for any data: with η = 0.1 its weights sit on
the last ~20 ghost batches, and the two differ by the sampling noise of ~20 ghost batches, far
more than 2 % when G is small. Folds of consecutive forwards compose exactly, so micro-batches
processed in order give the running statistics of one forward over the whole batch.

Across DDP ranks, ``running_stats_step`` makes the fold independent of the number of workers with
no communication per step: each rank collects its forwards' ghost batches during the step and
folds them as positions rank·k … rank·k + k − 1 of the step's W·k ghost batches in global order
(rank r's after rank r−1's). The fold is affine with the same coefficient on R on every rank, so
the mean over ranks of the buffers follows the exact global recursion; the loop averages the
buffers over ranks (one all-reduce) before it evaluates or checkpoints, and DDP must not sync
buffers at each forward (``Distributed.wrap``).

A little over 300 lines on purpose: the layers, their running-statistics fold and the helpers that
switch it (``running_stats_step``, ``frozen_bn_stats``) belong together.

With k = 1 the layer calls ``F.batch_norm`` and is plain batch norm; eval mode uses the running
statistics. Half-precision inputs (autocast) are normalised in float32 and returned in their dtype.
``frozen_bn_stats`` switches every running-statistics update off, for forwards that are not part
of a training step (perturbed passes, diagnostics).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from scalestudy.models.ghost_bn_function import _GhostBatchNormFunction, ghost_batch_norm_ops

__all__ = ["GhostBatchNorm1d", "GhostBatchNorm2d", "batch_norm_layers", "convert_to_ghost_bn", "fold_running_stats",
           "frozen_bn_stats", "has_plain_batch_norm", "running_stat_buffers", "running_stats_step"]


class _GhostBatchNorm(nn.Module):
    """Shared body of GhostBatchNorm1d/2d; parameter and buffer names match ``nn.BatchNorm``."""

    _input_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, ghost_batch_size: int, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True) -> None:
        super().__init__()
        if isinstance(ghost_batch_size, bool) or not isinstance(ghost_batch_size, int) or ghost_batch_size < 1:
            raise ValueError(f"ghost_batch_size must be a positive int, got {ghost_batch_size!r}")
        self.num_features = num_features
        self.ghost_batch_size = ghost_batch_size
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        # False: train-mode forwards use batch statistics and leave the running ones alone (frozen_bn_stats).
        self.track_running_stats = True
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        # running_stats_step: this step's ghost statistics, collected until fold_running_stats.
        self._collecting = False
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pending_count = 0
        self._weights: tuple[tuple, torch.Tensor, torch.Tensor] | None = None  # cached fold weights

    def extra_repr(self) -> str:
        return (f"{self.num_features}, ghost_batch_size={self.ghost_batch_size}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.affine}")

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1)
        self.num_batches_tracked.zero_()
        self._pending, self._pending_count = None, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in self._input_dims:
            raise ValueError(f"{type(self).__name__} expects a {' or '.join(map(str, self._input_dims))}-d "
                             f"input, got shape {tuple(x.shape)}")
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)

        n, ghost = x.shape[0], self.ghost_batch_size
        if n == 0 or n % ghost:
            raise ValueError(
                f"{type(self).__name__}: the local (per-worker) batch of {n} samples is not a positive "
                f"multiple of ghost_batch_size={ghost}; choose batch sizes whose per-worker share is a "
                f"multiple of G (and drop or pad a ragged last batch)")
        if x.numel() // x.shape[1] // (n // ghost) < 2:
            raise ValueError(f"{type(self).__name__}: need more than 1 value per channel in a ghost batch, "
                             f"got input shape {tuple(x.shape)} with ghost_batch_size={ghost}")
        if n == ghost and not self.track_running_stats:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        if n == ghost and not self._collecting:  # one ghost batch folded at once: exactly nn.BatchNorm
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                True, factor, self.eps)

        # Under torch.func transforms (vmap over a stack of models) the plain-ops form: the fused
        # autograd function has no vmap rule.
        normalise = (ghost_batch_norm_ops if torch._C._functorch.is_functorch_wrapped_tensor(x)
                     else _GhostBatchNormFunction.apply)
        y, mean, var = normalise(x, self.weight, self.bias, ghost, self.eps)
        if self.track_running_stats:
            count = x.numel() // (mean.shape[0] * x.shape[1])  # values per ghost batch and channel
            if self._collecting:
                self._collect(mean, var, count)
            else:
                self._fold_in_order(mean, var, count)
        return y

    def _step_weights(self, k: int, count: int, like: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """(decay, w_mean, w_var) for folding k ghost batches in order: R ← decay·R + (1−decay)·Σ_j w_j·s_j.

        Momentum η: decay = (1−η)^k and w_j ∝ η(1−η)^(k−1−j), normalised to sum 1 (k sequential
        nn.BatchNorm updates). Momentum None, after n0 batches: decay = n0/(n0+k), w_j = 1/k (the
        cumulative average). w_var also turns the biased per-ghost variance into the unbiased one
        (× count/(count−1)), as nn.BatchNorm's running variance is. The weights are cached.
        """
        if self.momentum is None:
            seen = float(self.num_batches_tracked)
            decay = seen / (seen + k)
        else:
            decay = (1.0 - self.momentum) ** k
        key = (k, count, self.momentum, like.dtype, like.device)
        if self._weights is None or self._weights[0] != key:
            if self.momentum is None:
                weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
            else:
                weights = (1.0 - self.momentum) ** torch.arange(k - 1, -1, -1, dtype=torch.float64)
                weights /= weights.sum()
            self._weights = key, weights.to(like.device, like.dtype), (weights * count / (count - 1)).to(
                like.device, like.dtype)
        return decay, self._weights[1], self._weights[2]

    @torch.no_grad()
    def _fold_in_order(self, means: torch.Tensor, biased_vars: torch.Tensor, count: int) -> None:
        """Fold k ghost batches' (k, C) statistics into the running ones now, as k nn.BatchNorm calls would."""
        k = means.shape[0]
        decay, w_mean, w_var = self._step_weights(k, count, means)
        self.num_batches_tracked.add_(k)
        if decay < 1.0:  # momentum 0 never moves the statistics
            _lerp_(self.running_mean, (w_mean @ means).to(self.running_mean.dtype), 1.0 - decay)
            _lerp_(self.running_var, (w_var @ biased_vars).to(self.running_var.dtype), 1.0 - decay)

    @torch.no_grad()
    def _collect(self, means: torch.Tensor, biased_vars: torch.Tensor, count: int) -> None:
        """Add k ghost batches' (k, C) statistics, in order, to this step's pending sums P.

        Momentum η: P ← (1−η)^k·P + Σ_j η(1−η)^(k−1−j)·s_j, the sequential fold of these ghost
        batches into a zero start (consecutive calls compose). Momentum None: P ← P + Σ_j s_j.
        """
        k = means.shape[0]
        decay, w_mean, w_var = self._step_weights(k, count, means)
        scale = k if self.momentum is None else 1.0 - decay
        mean_sum = (w_mean @ means).to(self.running_mean.dtype).mul_(scale)
        var_sum = (w_var @ biased_vars).to(self.running_var.dtype).mul_(scale)
        if self._pending is None:
            self._pending = mean_sum, var_sum
        else:
            step_decay = 1.0 if self.momentum is None else decay
            pending_mean, pending_var = self._pending
            pending_mean.mul_(step_decay).add_(mean_sum)
            pending_var.mul_(step_decay).add_(var_sum)
        self._pending_count += k

    @torch.no_grad()
    def fold_running_stats(self, rank: int = 0, world_size: int = 1) -> None:
        """Fold the pending ghost batches into the running statistics as this rank's share of a step.

        The step holds K = W·k ghost batches, this rank's k at global positions rank·k … rank·k+k−1.
        Momentum η: R ← (1−η)^K·R + W·(1−η)^((W−1−rank)·k)·P; momentum None (n0 batches so far):
        R ← (n0·R + W·P)/(n0 + K). Averaged over the W ranks this is the sequential fold of all K
        ghost batches in global order; with W = 1 it is the fold of this rank's batches.
        """
        if self._pending is None:
            return
        k = self._pending_count
        total = world_size * k
        if self.momentum is None:
            seen = float(self.num_batches_tracked)
            decay, scale = seen / (seen + total), world_size / (seen + total)
        else:
            decay = (1.0 - self.momentum) ** total
            scale = world_size * (1.0 - self.momentum) ** ((world_size - 1 - rank) * k)
        pending_mean, pending_var = self._pending
        self.running_mean.mul_(decay).add_(pending_mean, alpha=scale)
        self.running_var.mul_(decay).add_(pending_var, alpha=scale)
        self.num_batches_tracked.add_(total)
        self._pending, self._pending_count = None, 0


def _lerp_(buffer: torch.Tensor, end: torch.Tensor, weight: float) -> None:
    """buffer ← buffer + weight·(end − buffer): one fused ``lerp_``, except on stacked buffers under
    vmap, where ``lerp_`` has no batching rule (torch would loop over the stack)."""
    if torch._C._functorch.is_functorch_wrapped_tensor(buffer):
        buffer.mul_(1.0 - weight).add_(end, alpha=weight)
    else:
        buffer.lerp_(end, weight)


class GhostBatchNorm1d(_GhostBatchNorm):
    """Ghost batch norm for (N, C) or (N, C, L) inputs; a drop-in for ``nn.BatchNorm1d``."""

    _input_dims = (2, 3)


class GhostBatchNorm2d(_GhostBatchNorm):
    """Ghost batch norm for (N, C, H, W) inputs, any memory format; a drop-in for ``nn.BatchNorm2d``."""

    _input_dims = (4,)


_GHOST_OF = {nn.BatchNorm1d: GhostBatchNorm1d, nn.BatchNorm2d: GhostBatchNorm2d}


def convert_to_ghost_bn(module: nn.Module, ghost_batch_size: int) -> nn.Module:
    """Replace every ``nn.BatchNorm1d``/``2d`` in ``module`` (recursively) by its ghost version.

    The new layers share the old layers' parameter and buffer tensors (so an optimizer built
    before the conversion still holds the right parameters, and state-dict keys are unchanged)
    and copy eps, momentum, affine and the train/eval mode. Returns the converted module
    (a new object only when ``module`` itself is a batch-norm layer).
    """
    ghost_type = _GHOST_OF.get(type(module))
    if ghost_type is not None:
        if not module.track_running_stats:
            raise ValueError("convert_to_ghost_bn: BatchNorm with track_running_stats=False is not supported")
        ghost = ghost_type(module.num_features, ghost_batch_size, eps=module.eps,
                           momentum=module.momentum, affine=module.affine)
        ghost.weight, ghost.bias = module.weight, module.bias
        ghost.running_mean, ghost.running_var = module.running_mean, module.running_var
        ghost.num_batches_tracked = module.num_batches_tracked
        return ghost.train(module.training)
    for name, child in module.named_children():
        converted = convert_to_ghost_bn(child, ghost_batch_size)
        if converted is not child:
            setattr(module, name, converted)
    return module


def batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    """Every layer with running statistics: ``nn.BatchNorm*`` (tracking them) and ghost batch norm."""
    return [m for m in model.modules()
            if isinstance(m, _GhostBatchNorm) or (isinstance(m, _BatchNorm) and m.running_mean is not None)]


def has_plain_batch_norm(model: nn.Module) -> bool:
    """True when ``model`` normalises over whatever batch it is given (``nn.BatchNorm*``, not ghost)."""
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def running_stat_buffers(model: nn.Module) -> list[torch.Tensor]:
    """The running means and variances of every batch-norm layer (what DDP ranks average)."""
    return [buffer for m in batch_norm_layers(model) for buffer in (m.running_mean, m.running_var)]


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """No running-statistics update from any batch-norm layer of ``model`` inside the block.

    For train-mode forwards that are not part of a training step (a perturbed pass, a diagnostic):
    they still normalise with their batch (or ghost-batch) statistics, but ``running_mean``,
    ``running_var`` and ``num_batches_tracked`` stay as they are. Covers ``nn.BatchNorm*`` and
    ghost batch norm; nests.
    """
    layers = [m for m in model.modules() if isinstance(m, (_BatchNorm, _GhostBatchNorm))]
    saved = [m.track_running_stats for m in layers]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, tracked in zip(layers, saved):
            m.track_running_stats = tracked


def fold_running_stats(model: nn.Module, rank: int = 0, world_size: int = 1) -> None:
    """Fold every ghost layer's collected statistics as rank ``rank`` of ``world_size`` (see the layer)."""
    for m in model.modules():
        if isinstance(m, _GhostBatchNorm):
            m.fold_running_stats(rank, world_size)


@contextlib.contextmanager
def running_stats_step(model: nn.Module, rank: int = 0, world_size: int = 1) -> Iterator[None]:
    """The train-mode forwards inside are one optimizer step's share of this rank; fold them on exit.

    With one worker the per-forward folds already compose exactly, so nothing changes. With W
    ranks, ghost layers collect the step's ghost batches and fold them in global order on exit
    (see the module docstring); an exception discards them. Every rank must run the same number
    of ghost batches per step (DESIGN decision 5), and the buffers mean something only once
    averaged over ranks (``running_stat_buffers``).
    """
    if world_size == 1:
        yield
        return
    layers = [m for m in model.modules() if isinstance(m, _GhostBatchNorm)]
    for m in layers:
        m._collecting = True
    try:
        yield
    except BaseException:
        for m in layers:
            m._pending, m._pending_count = None, 0
        raise
    else:
        fold_running_stats(model, rank, world_size)
    finally:
        for m in layers:
            m._collecting = False
