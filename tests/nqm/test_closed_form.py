"""scalestudy.nqm against closed forms and Monte Carlo: the second-moment recurrence, S(B)'s limits, CBS(t)'s truth."""

import math

import numpy as np
import pytest
import torch

from scalestudy.data.nqm import load_nqm
from scalestudy.data.options import NqmOptions
from scalestudy.models.nqm import NoisyQuadratic
from scalestudy.nqm import (Branching, HeavyBall, Quadratic, cbs_truth, critical_batch_size, loss_after, loss_curve,
                            loss_excess, moments_after, moments_of, steps_to_target, window_loss)
from scalestudy.tasks.nqm import NoisyQuadraticTask


def test_one_direction_without_momentum_is_the_geometric_formula():
    # E θ_t² = a^{2t}(θ₀² − θ∞²) + θ∞², a = 1 − εh, θ∞² = ε²(c/B)/(1 − a²) (Zhang et al. 2019, §3: SGD's dynamics per direction)
    h, c, lr, batch, theta0 = 0.7, 0.3, 0.4, 4, 2.0
    problem = Quadratic(np.array([h]), np.array([c]))
    a = 1 - lr * h
    floor = lr**2 * (c / batch) / (1 - a**2)
    t = np.arange(41)
    expected = 0.5 * h * (a ** (2 * t) * (theta0**2 - floor) + floor)
    curve = loss_curve(problem, moments_of(np.array([theta0])), HeavyBall(lr), batch, 40)
    np.testing.assert_allclose(curve, expected, rtol=1e-12)
    assert loss_after(problem, moments_of(np.array([theta0])), HeavyBall(lr), batch, 40) == pytest.approx(expected[-1])


def test_the_stationary_loss_with_momentum_is_the_known_one():
    # Heavy ball's stationary E θ² = ε(c/B)(1 + m) / (h(1 − m)(2(1 + m) − εh)) for v ← mv + g, θ ← θ − εv.
    h, c, lr, m, batch = 1.0, 1.0, 0.1, 0.9, 8
    moments = moments_after(Quadratic(np.array([h]), np.array([c])), moments_of(np.array([1.0])),
                            HeavyBall(lr, m), batch, 20_000)
    expected = lr * (c / batch) * (1 + m) / (h * (1 - m) * (2 * (1 + m) - lr * h))
    assert moments[0, 0] == pytest.approx(expected, rel=1e-9)


def test_recurrence_matches_monte_carlo_of_momentum_and_preconditioned_sgd():
    problem = Quadratic.nqm(4, exponent=1.0, noise_scale=0.8, noise_power=0.5)
    sgd = HeavyBall(0.3, momentum=0.8, precondition=0.5)
    theta0, velocity0 = np.array([1.0, -0.5, 2.0, 0.3]), np.array([0.2, 0.0, -0.1, 0.05])
    rng = np.random.default_rng(0)
    runs, batch, updates = 40_000, 4, 25
    theta, v = np.tile(theta0, (runs, 1)), np.tile(velocity0, (runs, 1))
    step = sgd.lr * problem.curvatures ** -sgd.precondition
    for _ in range(updates):
        grad = problem.curvatures * theta + rng.standard_normal(theta.shape) * np.sqrt(problem.noise / batch)
        v = sgd.momentum * v + grad
        theta = theta - step * v
    losses = problem.loss(theta)
    expected = loss_after(problem, moments_of(theta0, velocity0), sgd, batch, updates)
    assert losses.mean() == pytest.approx(expected, abs=4 * losses.std() / math.sqrt(runs))


@pytest.mark.slow  # 150 runs of torch's optimizer step by step: several seconds on 2 cores
def test_recurrence_matches_the_torch_workload_itself():
    # The nqm dataset, model and task with torch's SGD: batches drawn from the whitened draws at random.
    torch.manual_seed(0)
    torch.set_num_threads(1)
    options = NqmOptions(dim=6, train_size=20_000, test_size=1)
    data = load_nqm(options)
    task = NoisyQuadraticTask()
    batch, updates, runs, lr, momentum = 8, 10, 150, 0.5, 0.5
    model = NoisyQuadratic((6,), 1, exponent=1.0, theta0_scale=1.0, noise_scale=0.7)
    theta0 = model.theta.detach().clone()
    losses = []
    generator = torch.Generator().manual_seed(1)
    for _ in range(runs):
        with torch.no_grad():
            model.theta.copy_(theta0)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        for _ in range(updates):
            rows = torch.randint(0, options.train_size, (batch,), generator=generator)
            optimizer.zero_grad()
            task.loss(model(data.train_x[rows]), data.train_y[rows]).backward()
            optimizer.step()
        with torch.no_grad():
            losses.append(task.eval_metrics(task.eval_sums(model(data.test_x), data.test_y).tolist())["loss"])
    expected = loss_after(Quadratic.nqm(6, noise_scale=0.7), moments_of(np.ones(6)), HeavyBall(lr, momentum), batch,
                          updates)
    losses = np.array(losses)
    assert losses.mean() == pytest.approx(expected, abs=4 * losses.std() / math.sqrt(runs))


def test_steps_to_target_falls_as_one_over_b_then_flattens():
    problem = Quadratic.nqm(10, noise_scale=0.3)
    start = moments_of(np.ones(10))
    lrs = np.geomspace(0.01, 1.9, 16)
    target = 0.02 * problem.loss(np.ones(10))
    sizes = np.array([1, 2, 4, 16, 64, 256, 4096])
    steps = np.array([steps_to_target(problem, start, lrs, 0.0, b, target, 300)[0] for b in sizes])
    noiseless = Quadratic(problem.curvatures, 0 * problem.noise)
    deterministic = steps_to_target(noiseless, start, lrs, 0.0, 1, target, 300)[0]
    # Small B: perfect scaling (B·S nearly constant); large B: the noiseless count S_min.
    assert steps[0] * sizes[0] == pytest.approx(steps[1] * sizes[1], rel=0.15)
    assert steps[-1] == deterministic
    assert np.all(np.diff(steps) <= 0) and steps[0] > 5 * deterministic
    b_crit, s_min = critical_batch_size(sizes, steps)
    assert sizes[0] < b_crit < sizes[-1]
    assert s_min == pytest.approx(deterministic, rel=0.3)


BRANCHING = Branching(base_lr=0.1, base_batch_size=8, momentum=0.0, rule="linear", window_examples=512,
                      tolerance=0.003)


def test_cbs_truth_grows_with_the_tolerance_and_sits_on_it():
    problem = Quadratic.nqm(50)
    moments = moments_after(problem, moments_of(np.ones(50)), HeavyBall(0.1), 8, 200)
    truths = [cbs_truth(problem, moments, Branching(**{**BRANCHING.__dict__, "tolerance": tol}), 256)
              for tol in (0.0005, 0.001, 0.003, 0.01, 0.03)]
    assert truths == sorted(truths)
    assert 8 < truths[0] < truths[-1] < 256
    middle = Branching(**{**BRANCHING.__dict__, "tolerance": 0.003})
    assert loss_excess(problem, moments, middle, truths[2]) == pytest.approx(0.003, abs=2e-4)
    assert cbs_truth(problem, moments, Branching(**{**BRANCHING.__dict__, "tolerance": 10.0}), 256) == math.inf


def test_window_loss_is_exact_at_sizes_that_divide_the_window_and_continuous_between():
    problem = Quadratic.nqm(10)
    moments = moments_of(np.ones(10) * 0.5)
    assert window_loss(problem, moments, BRANCHING, 32) == pytest.approx(
        loss_after(problem, moments, HeavyBall(0.4), 32, 16))
    left, right = window_loss(problem, moments, BRANCHING, 31.999), window_loss(problem, moments, BRANCHING, 32.001)
    assert left == pytest.approx(right, rel=1e-3)
