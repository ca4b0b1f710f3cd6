"""The gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, appendix A.1) against
closed forms: the two-batch-size estimator, its smoothing, and the DDP measurement (each rank's
local gradient before the all-reduce is the small batch) on a problem whose per-example gradient
mean and covariance are known exactly."""

from __future__ import annotations

import contextlib
import math
import multiprocessing

import pytest
import torch
from torch import nn

from scalestudy.noise import GradientNoiseScale, estimate_gradient_noise
from scalestudy.train.distributed import Distributed
from scalestudy.train.step import GradientStep

# The closed-form problem. A linear classifier z = Wx (2 classes, no bias) held at W = 0 (lr = 0),
# every label 0: the per-example gradient of the cross-entropy is ½·[−x_i; x_i], so with
# x_i ~ N(μ, diag(σ²)): G = ½·[−μ; μ], |G|² = ½|μ|², tr(Σ) = ½·Σσ², B_simple = Σσ²/|μ|².
DIM = 8
SIGMA_SQ = torch.linspace(0.5, 2.0, DIM, dtype=torch.float64)
MU = torch.full((DIM,), math.sqrt(SIGMA_SQ.sum().item() / 12.0 / DIM), dtype=torch.float64)  # B_simple = 12
TRUE_GRAD_SQ = 0.5 * MU.square().sum().item()
TRUE_TRACE = 0.5 * SIGMA_SQ.sum().item()
LOCAL, EPOCHS, STEPS = 8, 40, 25


def test_estimator_is_exact_on_expected_norms():
    """Fed the expectations E|G_B|² = |G|² + tr(Σ)/B (eq. A.1), eq. A.2 returns |G|² and tr(Σ) exactly."""
    grad_sq, trace = 0.7, 9.0
    for small, big in ((1, 2), (8, 16), (16, 512)):
        estimate = estimate_gradient_noise(grad_sq + trace / small, small, grad_sq + trace / big, big)
        assert estimate.grad_sq == pytest.approx(grad_sq) and estimate.trace_sigma == pytest.approx(trace)
    with pytest.raises(ValueError, match="big_batch must exceed small_batch"):
        estimate_gradient_noise(1.0, 16, 1.0, 16)


def test_smoothed_ratio_is_never_negative_nor_from_nothing():
    noise = GradientNoiseScale(smoothing=0.5)
    assert noise.value is None  # no measurement yet
    noise.update_from(-0.1, 5.0)  # |G|² estimate ≤ 0: no batch size to report
    assert noise.value is None
    noise.update_from(0.3, 5.0)
    assert noise.value == pytest.approx((0.5 * 5.0 + 0.5 * 0.5 * 5.0) / (0.5 * 0.3 - 0.25 * 0.1))
    negative_trace = GradientNoiseScale(smoothing=0.5)
    negative_trace.update_from(0.2, -1.0)
    assert negative_trace.value is None
    restored = GradientNoiseScale(smoothing=0.5)
    restored.load_state_dict(noise.state_dict())
    assert restored.value == noise.value


def test_estimator_is_unbiased_by_simulation():
    """Gaussian per-example gradients: over 4000 simulated steps the mean estimates of |G|² and
    tr(Σ), and the ratio of means, land within 4 standard errors of the truth."""
    g = torch.Generator().manual_seed(0)
    mean, scale, small, big = torch.tensor([0.6, -0.2, 0.1]), torch.tensor([1.0, 2.0, 0.5]), 4, 32
    steps = 4000
    examples = mean + scale * torch.randn(steps, big, 3, generator=g, dtype=torch.float64)
    small_sq = examples[:, :small].mean(1).square().sum(1)
    big_sq = examples.mean(1).square().sum(1)
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1 / small - 1 / big)
    true_grad_sq, true_trace = mean.square().sum().item(), scale.square().sum().item()
    for values, truth in ((grad_sq, true_grad_sq), (trace, true_trace),
                          (trace - true_trace / true_grad_sq * grad_sq, 0.0)):  # mean(T) / mean(G) = ratio
        assert abs(values.mean().item() - truth) < 4 * values.std().item() / math.sqrt(steps)


def _closed_form_batch(rank: int, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 * rank + step)
    return MU + SIGMA_SQ.sqrt() * torch.randn(LOCAL, DIM, generator=g, dtype=torch.float64)


def _closed_form_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        parallel = Distributed(rank=rank, world_size=world_size, device=torch.device("cpu"))
        model = nn.Linear(DIM, 2, bias=False).double()
        nn.init.zeros_(model.weight)
        net = parallel.wrap(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # θ, hence G, stays put
        step = GradientStep(net, optimizer, lambda: parallel.no_sync(net), contextlib.nullcontext(),
                            measure_noise=True, dist=parallel)
        totals = torch.zeros(2, dtype=torch.float64).unbind()
        targets = torch.zeros(LOCAL, dtype=torch.long)
        estimates = {}
        for chunks in (1, 2):  # 2: micro-batches under no_sync, the local gradient is their sum
            estimates[chunks] = []
            for epoch in range(EPOCHS):
                for s in range(STEPS):
                    inputs = _closed_form_batch(rank, (chunks * EPOCHS + epoch) * STEPS + s)
                    step(inputs, targets, LOCAL // chunks, chunks, totals)
                estimates[chunks].append(step.noise_estimate(LOCAL, LOCAL * world_size, STEPS, parallel))
        torch.save(estimates, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes (gloo) and 2000 DDP steps: about 10 s
def test_ddp_local_gradient_gives_the_closed_form_noise_scale(tmp_path):
    args = (2, str(tmp_path / "init"), str(tmp_path))
    child = multiprocessing.get_context("spawn").Process(target=_closed_form_worker, args=(1, *args))
    child.start()
    try:
        _closed_form_worker(0, *args)
    finally:
        child.join(timeout=120)
    assert child.exitcode == 0
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert results[0] == results[1]  # every rank reports the same reduced estimate
    for chunks, epochs in results[0].items():
        grad_sq = torch.tensor([e[0] for e in epochs], dtype=torch.float64)
        trace = torch.tensor([e[1] for e in epochs], dtype=torch.float64)
        ratio = TRUE_TRACE / TRUE_GRAD_SQ  # 12 examples
        for values, truth in ((grad_sq, TRUE_GRAD_SQ), (trace, TRUE_TRACE), (trace - ratio * grad_sq, 0.0)):
            error = abs(values.mean().item() - truth)
            assert error < 4 * values.std().item() / math.sqrt(EPOCHS), (chunks, values.mean().item(), truth)
        assert trace.mean() / grad_sq.mean() == pytest.approx(ratio, rel=0.25)
