"""The vectorised ghost batch-norm kernel: one autograd function for all k ghost batches of a batch.

The k ghost batches of a batch are handled in one vectorised pass, never a Python loop over
chunks, by a custom autograd function whose backward is written out by hand:

    forward   per ghost batch and channel: mean μ, biased variance σ², y = (x − μ)·γ/√(σ²+ε) + β
    backward  dx = a·dy + b·x + c per ghost batch and channel, with a = γ/√(σ²+ε) and b, c from
              Σdy and Σdy·(x − μ) over the ghost batch (the standard batch-norm gradient).

Speed notes (CPU, where a pass over memory is the cost): the statistics come from two reductions
over contiguous memory (per sample and channel first, then over the G samples of a ghost batch)
of s = x − K, where the shift K is each channel's first value: E[s²] − E[s]² is then as accurate
as a two-pass variance even when a channel's |mean| ≫ std. In backward, ``native_batch_norm_backward``
with its input gradient masked off is a fused kernel that returns Σdy and Σdy·(x − μ) for every
(sample, channel) row of a contiguous input in a single pass.
"""

from __future__ import annotations

import torch


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


def ghost_batch_norm_ops(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                         ghost_batch_size: int, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same (y, mean, biased var) as ``_GhostBatchNormFunction`` in plain differentiable ops.

    For function transforms (``torch.func.vmap`` over a stack of models): the autograd function
    has no vmap rule, since its passes write into preallocated buffers (``out=``) and call a fused
    aten kernel. Slower (autograd saves the intermediates), the same arithmetic to rounding.
    """
    n, channels = x.shape[:2]
    k = n // ghost_batch_size
    xr = x.to(_compute_dtype(x.dtype)).reshape(k, ghost_batch_size, *x.shape[1:])
    dims = (1, *range(3, xr.dim()))  # the G samples and the spatial positions of each ghost batch
    var, mean = torch.var_mean(xr, dim=dims, correction=0, keepdim=True)
    y = (xr - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * _per_ghost(weight.view(1, channels), xr)
    if bias is not None:
        y = y + _per_ghost(bias.view(1, channels), xr)
    return y.reshape(x.shape).to(x.dtype), mean.reshape(k, channels), var.reshape(k, channels)

