"""Ghost batch normalisation (Hoffer et al. 2017): batch statistics per ghost batch of G samples.

A local batch of b = k·G samples is normalised as k independent batches of G samples each,
so the noise that batch statistics inject stays that of a batch of G even when B grows
(DESIGN decision 4). The k ghost batches are handled in one vectorised pass, never a Python
loop over chunks, by a custom autograd function whose backward is written out by hand:

    forward   per ghost batch and channel: mean μ, biased variance σ², y = (x − μ)·γ/√(σ²+ε) + β
    backward  dx = a·dy + b·x + c per ghost batch and channel, with a = γ/√(σ²+ε) and b, c from
              Σdy and Σdy·(x − μ) over the ghost batch (the standard batch-norm gradient).

Running statistics are updated once per forward, with the same momentum rule as ``nn.BatchNorm``,
from the mean over ghost batches of the per-ghost mean and of the per-ghost unbiased variance.
With k = 1 the layer calls ``F.batch_norm`` and is plain batch norm; eval mode uses the running
statistics. Half-precision inputs (autocast) are normalised in float32 and returned in their dtype.

Speed notes (CPU, where a pass over memory is the cost): the statistics come from two reductions
over contiguous memory (per sample and channel first, then over the G samples of a ghost batch)
of s = x − K, where the shift K is each channel's first value: E[s²] − E[s]² is then as accurate
as a two-pass variance even when a channel's |mean| ≫ std. In backward, ``native_batch_norm_backward``
with its input gradient masked off is a fused kernel that returns Σdy and Σdy·(x − μ) for every
(sample, channel) row of a contiguous input in a single pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GhostBatchNorm1d", "GhostBatchNorm2d", "convert_to_ghost_bn"]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Statistics are computed in float32 for half-precision inputs (autocast), else in the input dtype."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class _GhostBatchNormFunction(torch.autograd.Function):
    """y, mean, var = f(x, weight, bias) for x of shape (k·G, C, *spatial); mean, var are (k, C), var biased.

    Written with few, mostly fused tensor ops: at small sizes the per-op overhead dominates.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, ghost_batch_size: int, eps: float):  # type: ignore[override]
        n, channels = x.shape[:2]
        k = n // ghost_batch_size
        spatial = tuple(range(2, x.dim()))
        inv_count = k * channels / x.numel()  # 1 / (elements per ghost batch and channel)
        compute_dtype = _compute_dtype(x.dtype)
        xc = x if x.dtype == compute_dtype else x.to(compute_dtype)

        # Σ(x − K) and Σ(x − K)² per (sample, channel), then summed over the G samples of each ghost
        # batch. The shift K (each channel's first value) keeps E[s²] − E[s]² accurate when a
        # channel's |mean| ≫ std; the shifted copy is the buffer the output is then written into.
        shift_k = xc[(0, slice(None)) + (0,) * len(spatial)].view(1, channels, *([1] * len(spatial)))
        y = xc - shift_k
        if spatial:
            sum_s = _sum_over_ghost(y.sum(spatial), k)
            sum_s2 = _sum_over_ghost(torch.linalg.vector_norm(y, dim=spatial).square_(), k)
        else:
            sum_s = _sum_over_ghost(y, k)
            sum_s2 = _sum_over_ghost(y.square_(), k)
        mean_s = sum_s.mul_(inv_count)
        var = torch.addcmul(sum_s2.mul_(inv_count), mean_s, mean_s, value=-1).clamp_min_(0)
        mean = mean_s.add_(shift_k.view(1, channels))
        invstd = var.add(eps).rsqrt_()

        # y = x·scale + shift, scale = γ/√(σ²+ε) and shift = β − μ·scale per ghost batch and channel.
        scale = invstd if weight is None else invstd * weight
        shift = (mean * scale).neg_() if bias is None else torch.addcmul(bias, mean, scale, value=-1)
        xr = xc.view(k, ghost_batch_size, *x.shape[1:])
        torch.addcmul(_per_ghost(shift, xr), xr, _per_ghost(scale, xr), out=y.view(xr.shape))

        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.ghost_batch_size = ghost_batch_size
        ctx.mark_non_differentiable(mean, var)
        return (y if y.dtype == x.dtype else y.to(x.dtype)), mean, var

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var):  # type: ignore[override]
        x, weight, mean, invstd = ctx.saved_tensors
        ghost_batch_size = ctx.ghost_batch_size
        n, channels = x.shape[:2]
        k = n // ghost_batch_size
        spatial = tuple(range(2, x.dim()))
        inv_count = k * channels / x.numel()
        xc = x if x.dtype == mean.dtype else x.to(mean.dtype)
        dy = grad_y if grad_y.dtype == mean.dtype else grad_y.to(mean.dtype)
        xr = xc.view(k, ghost_batch_size, *x.shape[1:])

        # Σdy and Σdy·(x − μ) per ghost batch and channel, each (k, C).
        grad_x = None
        if spatial and xc.is_contiguous() and dy.is_contiguous():
            # One fused pass: treat each (sample, channel) row as a batch-norm "channel" whose mean
            # is its ghost batch's mean; with weight = invstd = 1, grad_weight is Σdy·(x − μ) and
            # grad_bias is Σdy (the input gradient is masked off).
            rows = n * channels
            row_mean = mean.view(k, 1, channels).expand(k, ghost_batch_size, channels).reshape(rows)
            ones = torch.ones_like(row_mean)
            _, sum_dy_xmu, sum_dy = torch.ops.aten.native_batch_norm_backward(
                dy.view(1, rows, -1), xc.view(1, rows, -1), ones, None, None,
                row_mean, ones, True, 0.0, [False, True, True])
            sum_dy = _sum_over_ghost(sum_dy.view(n, channels), k)
            sum_dy_xmu = _sum_over_ghost(sum_dy_xmu.view(n, channels), k)
        else:
            # Any layout: Σdy·x via a temporary that then becomes the input gradient's buffer.
            grad_x = torch.mul(dy, xc)
            sum_dy = _sum_over_ghost(dy.sum(spatial) if spatial else dy, k)
            sum_dy_x = _sum_over_ghost(grad_x.sum(spatial) if spatial else grad_x, k)
            sum_dy_xmu = torch.addcmul(sum_dy_x, mean, sum_dy, value=-1)

        grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # The batch-norm gradient with per-ghost statistics, dx = a·dy + b·x + c, where a = γ·invstd,
            # b = −a·invstd²·Σdy(x−μ)/M, c = −a·Σdy/M − b·μ, for M elements per ghost batch and channel.
            a = invstd if weight is None else invstd * weight
            b = (a * invstd).mul_(invstd).mul_(sum_dy_xmu).mul_(-inv_count)
            c = torch.addcmul((a * sum_dy).mul_(-inv_count), b, mean, value=-1)
            if grad_x is None:
                grad_x = torch.empty_like(xc)
            torch.addcmul(_per_ghost(c, xr), xr, _per_ghost(b, xr), out=grad_x.view(xr.shape))
            grad_x.view(xr.shape).addcmul_(dy.view(xr.shape), _per_ghost(a, xr))
            if grad_x.dtype != x.dtype:
                grad_x = grad_x.to(x.dtype)
        else:
            grad_x = None
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = (sum_dy_xmu * invstd).sum(0).to(weight.dtype)
        if weight is not None and ctx.needs_input_grad[2]:
            grad_bias = sum_dy.sum(0).to(weight.dtype)
        return grad_x, grad_weight, grad_bias, None, None


def _per_ghost(stat: torch.Tensor, xr: torch.Tensor) -> torch.Tensor:
    """View a (k, C) statistic so it broadcasts against x viewed as (k, G, C, *spatial)."""
    return stat.view(stat.shape[0], 1, stat.shape[1], *([1] * (xr.dim() - 3)))


def _sum_over_ghost(per_sample: torch.Tensor, k: int) -> torch.Tensor:
    """(k·G, C) per-sample sums -> (k, C) per-ghost-batch sums."""
    return per_sample.reshape(k, -1, per_sample.shape[1]).sum(1)


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
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"{self.num_features}, ghost_batch_size={self.ghost_batch_size}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.affine}")

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
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        if n == ghost:  # one ghost batch: exactly nn.BatchNorm
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                True, factor, self.eps)

        y, mean, var = _GhostBatchNormFunction.apply(x, self.weight, self.bias, ghost, self.eps)
        with torch.no_grad():  # running ← running + factor·(mean over ghost batches − running)
            count = x.numel() // (mean.shape[0] * x.shape[1])
            unbiased_var = var.mean(0).mul_(count / (count - 1))
            self.running_mean.lerp_(mean.mean(0).to(self.running_mean.dtype), factor)
            self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), factor)
        return y


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
