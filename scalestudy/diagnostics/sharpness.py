"""ε-sharpness of trained parameters (Keskar et al. 2017, "On Large-Batch Training...", Metric 2.1).

    φ(x, f, ε, A) = (max_{y ∈ C_ε} f(x + A y) − f(x)) / (1 + f(x)) × 100      [percent]

x is the flattened vector of trainable parameters (n numbers), f the training loss (the
caller's ``loss_fn``: eval mode, a fixed set of batches), A an n×p random matrix (a p-dim
random subspace) or A = I_n (the full space), and C_ε the box
|y_i| ≤ ε(|(A⁺x)_i| + 1), so each coordinate may move by a fraction ε of its own size.

How the max is found. Keskar et al. ran L-BFGS-B; we run ``steps`` of projected sign-gradient
ascent (PGD, as for adversarial examples), which suits a box: each coordinate moves by a
fraction of its own half-width in the direction of its gradient's sign, then is clipped back
into the box. The step fraction falls linearly from 4/steps to 0 (2.2 half-widths of travel
in all for steps=10: enough to cross the box), so a coordinate whose max lies inside the box
ends near it instead of oscillating. The ascent starts at a random point in the inner 10% of
the box, because at an exact stationary point (a quadratic's minimum) the gradient at x is zero
and sign ascent from x would never move; so close to x the first steps still follow the local
gradient. The reported max is the largest loss *evaluated* (f(x) included), a lower bound on the
true max, so φ ≥ 0. Cost: ``steps`` forward+backward passes plus two forward passes.

The subspace A. When n·p ≤ ``EXACT_QR_MAX_ELEMENTS`` A is a seeded Gaussian matrix made
orthonormal by QR, so A⁺ = Aᵀ exactly. Above that (a 2.7M-parameter WRN with p=100 would need
1 GB), A is never stored: its columns are regenerated in blocks from per-block seeded generators
at each product, as i.i.d. N(0, 1/n) entries; such columns are nearly orthonormal in high
dimension (inner products ~1/√n), so A⁺ ≈ Aᵀ is used. Results are deterministic given the seed
on a given device type (CPU and CUDA random streams differ).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SharpnessResult", "epsilon_sharpness", "sharpness_metrics"]

EXACT_QR_MAX_ELEMENTS = 20_000_000  # n·p up to which A is stored and orthonormalised (80 MB in float32)
CHUNK_ELEMENTS = 1 << 24  # entries of A regenerated at a time when it is not stored (64 MB in float32)
START_FRACTION = 0.1  # the ascent starts uniformly in this fraction of the box


@dataclass(frozen=True)
class SharpnessResult:
    """ε-sharpness and the numbers it is made of (losses in ``loss_fn``'s units)."""

    sharpness: float  # percent: 100·(max_loss − loss)/(1 + loss); NaN when loss is not finite
    loss: float  # f(x): the loss at the trained parameters
    max_loss: float  # the largest loss found in the box (inf if the loss blew up inside it)
    epsilon: float  # half-width of the box, relative to |(A⁺x)_i| + 1
    dims: int | None  # p, the random subspace's dimension; None = full space (A = I)
    steps: int  # ascent steps (forward+backward passes)


def _generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + stream) % (2**63))
    return generator


class _Subspace:
    """A: n×p with (nearly) orthonormal columns, used only through A·y and Aᵀ·v."""

    def __init__(self, n: int, p: int, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        self.n, self.p, self.seed, self.device, self.dtype = n, p, seed, device, dtype
        self.block = max(1, CHUNK_ELEMENTS // n)  # columns per regenerated block
        self.matrix: Tensor | None = None
        if n * p <= EXACT_QR_MAX_ELEMENTS:
            gaussian = torch.randn(n, p, generator=_generator(seed, 1, device), device=device, dtype=dtype)
            self.matrix = torch.linalg.qr(gaussian).Q  # reduced QR: n×p, AᵀA = I

    def _blocks(self) -> Iterator[tuple[int, Tensor]]:
        # One generator per block: the same columns at every call, whatever the block order.
        for index, start in enumerate(range(0, self.p, self.block)):
            width = min(self.block, self.p - start)
            columns = torch.randn(self.n, width, generator=_generator(self.seed, 2 + index, self.device),
                                  device=self.device, dtype=self.dtype)
            yield start, columns.div_(math.sqrt(self.n))

    def apply(self, y: Tensor) -> Tensor:
        """A·y: a p-vector to an n-vector."""
        if self.matrix is not None:
            return self.matrix @ y
        out = torch.zeros(self.n, device=self.device, dtype=self.dtype)
        for start, columns in self._blocks():
            out.addmv_(columns, y[start:start + columns.shape[1]])
        return out

    def adjoint(self, v: Tensor) -> Tensor:
        """Aᵀ·v: an n-vector to a p-vector (= A⁺v when A is stored, ≈ A⁺v otherwise)."""
        if self.matrix is not None:
            return self.matrix.T @ v
        return torch.cat([columns.T @ v for _, columns in self._blocks()])


def _flatten(tensors: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, params)])


@torch.no_grad()
def _write(params: Sequence[Tensor], vector: Tensor) -> None:
    offset = 0
    for p in params:
        p.copy_(vector[offset:offset + p.numel()].view_as(p))  # copy_: keeps p's storage and memory format
        offset += p.numel()


def epsilon_sharpness(model: nn.Module, loss_fn: Callable[[nn.Module], Tensor], *, epsilon: float = 1e-3,
                      dims: int | None = None, steps: int = 10, seed: int = 0) -> SharpnessResult:
    """Keskar's ε-sharpness of ``model``'s trainable parameters under ``loss_fn``.

    ``loss_fn(model)`` must return the scalar training loss, differentiable with respect to the
    parameters (no ``torch.no_grad`` inside), over the same fixed data at every call; put the
    model in eval mode first so BatchNorm uses its running statistics. ``epsilon`` is the
    relative box half-width (Keskar used 1e-3 and 5e-4); ``dims`` is p (None: full space);
    ``steps`` is the number of ascent steps. Works on the parameters' device.

    The model's parameters and buffers are restored bit for bit afterwards (even if ``loss_fn``
    raises), and no ``.grad`` is written (gradients come from ``torch.autograd.grad``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("epsilon_sharpness: the model has no trainable parameters")
    if not epsilon > 0:
        raise ValueError(f"epsilon_sharpness: epsilon must be > 0, got {epsilon}")
    if steps < 1:
        raise ValueError(f"epsilon_sharpness: steps must be ≥ 1, got {steps}")
    n = sum(p.numel() for p in params)
    if dims is not None and not 1 <= dims <= n:
        raise ValueError(f"epsilon_sharpness: dims must be in [1, {n}] (the number of parameters), got {dims}")
    device, dtype = params[0].device, params[0].dtype
    saved = {name: t.clone() for name, t in model.state_dict().items() if isinstance(t, Tensor)}
    try:
        x = _flatten([p.detach() for p in params], params)
        with torch.no_grad():
            loss = float(loss_fn(model))
        if not math.isfinite(loss):
            return SharpnessResult(math.nan, loss, math.nan, epsilon, dims, steps)
        subspace = None if dims is None else _Subspace(n, dims, seed, device, dtype)
        anchor = x if subspace is None else subspace.adjoint(x)  # A⁺x
        half_width = epsilon * (anchor.abs() + 1)
        start = torch.rand(half_width.shape, generator=_generator(seed, 0, device), device=device, dtype=dtype)
        u = (2 * start - 1) * START_FRACTION * half_width  # y (or z = y in the full space)
        best = loss
        for step in range(steps + 1):
            _write(params, x + (u if subspace is None else subspace.apply(u)))
            if step == steps:  # the last iterate: its loss only
                with torch.no_grad():
                    value = loss_fn(model)
            else:
                value = loss_fn(model)
                if not value.requires_grad:
                    raise ValueError("epsilon_sharpness: loss_fn returned a loss that does not depend on the "
                                     "parameters through autograd (is it computed under torch.no_grad?)")
                grads = torch.autograd.grad(value, params, allow_unused=True)
            value = float(value.detach())
            if not math.isfinite(value):  # the loss blows up inside the box: infinitely sharp
                best = math.inf
                break
            best = max(best, value)
            if step == steps:
                break
            gradient = _flatten(grads, params)
            if subspace is not None:
                gradient = subspace.adjoint(gradient)  # ∂f(x + Ay)/∂y = Aᵀ∇f(x + Ay)
            rate = (4.0 / steps) * (1.0 - step / steps)
            u = torch.clamp(u + rate * half_width * gradient.sign(), -half_width, half_width)
    finally:
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name in saved:
                    tensor.copy_(saved[name])
    return SharpnessResult(100.0 * (best - loss) / (1.0 + loss), loss, best, epsilon, dims, steps)


def sharpness_metrics(model: nn.Module, inputs: Tensor, targets: Tensor, *, epsilon: float = 1e-3,
                      subspace_dims: int | None = None, steps: int = 10, seed: int = 0,
                      batch: int = 2048) -> dict[str, float]:
    """``sharpness`` (the full space) and, when ``subspace_dims`` is set, ``sharpness_subspace``
    (a random subspace of that many dimensions) of the mean cross-entropy of ``model`` on
    ``inputs`` and ``targets`` (class indices), in eval mode and forwards of ``batch`` examples."""
    count = inputs.shape[0]

    def loss_fn(module: nn.Module) -> Tensor:
        module.eval()
        return sum(F.cross_entropy(module(inputs[i:i + batch]).float(), targets[i:i + batch], reduction="sum")
                   for i in range(0, count, batch)) / count

    values = {"sharpness": epsilon_sharpness(model, loss_fn, epsilon=epsilon, steps=steps, seed=seed).sharpness}
    if subspace_dims is not None:
        values["sharpness_subspace"] = epsilon_sharpness(model, loss_fn, epsilon=epsilon, dims=subspace_dims,
                                                         steps=steps, seed=seed).sharpness
    return values
