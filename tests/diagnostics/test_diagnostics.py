"""ε-sharpness and 1-D interpolation (scalestudy.diagnostics) on models whose answer is known."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import scalestudy.diagnostics.sharpness as sharpness_module
from scalestudy.data import load_dataset
from scalestudy.diagnostics import (
    DEFAULT_ALPHAS,
    InterpolationResult,
    epsilon_sharpness,
    interpolate,
    interpolate_state,
    plot_interpolation,
)
from scalestudy.diagnostics.interpolation import from_dict, to_dict, to_json
from scalestudy.models import build_model


class Quadratic(nn.Module):
    """Loss ½ Σ h_i (x_i − x*_i)² + c: a minimum at x* with curvatures h (a diagonal Hessian)."""

    def __init__(self, x_star: torch.Tensor, h: torch.Tensor, c: float = 1.0, x: torch.Tensor | None = None):
        super().__init__()
        self.x = nn.Parameter((x_star if x is None else x).clone())
        self.register_buffer("x_star", x_star.clone())
        self.register_buffer("h", h.clone())
        self.c = c

    def loss(self) -> torch.Tensor:
        return 0.5 * (self.h * (self.x - self.x_star) ** 2).sum() + self.c


def quadratic_loss(model: Quadratic) -> torch.Tensor:
    return model.loss()


def _quadratic(n: int = 200, seed: int = 0, c: float = 1.0, **kwargs) -> Quadratic:
    g = torch.Generator().manual_seed(seed)
    x_star = torch.randn(n, generator=g, dtype=torch.float64)
    h = 1 + 9 * torch.rand(n, generator=g, dtype=torch.float64)  # curvatures in [1, 10]
    return Quadratic(x_star, h, c, **kwargs)


def _exact_full_space_max(model: Quadratic, epsilon: float) -> float:
    """Max over the box |z_i| ≤ ε(|x_i| + 1): the corner z_i = w_i·sign(x_i − x*_i) (any corner at x*)."""
    x, x_star, h = model.x.detach(), model.x_star, model.h
    half_width = epsilon * (x.abs() + 1)
    return float(0.5 * (h * ((x - x_star).abs() + half_width) ** 2).sum() + model.c)


# -- ε-sharpness ----------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [1e-3, 1e-2])
def test_full_space_reaches_the_hand_computed_max_at_a_minimum(epsilon):
    model = _quadratic()
    result = epsilon_sharpness(model, quadratic_loss, epsilon=epsilon)
    exact = _exact_full_space_max(model, epsilon)
    assert result.loss == pytest.approx(1.0)
    assert result.max_loss - 1.0 == pytest.approx(exact - 1.0, rel=0.02)
    assert result.sharpness == pytest.approx(100 * (exact - 1.0) / 2.0, rel=0.02)
    assert (result.epsilon, result.dims, result.steps) == (epsilon, None, 10)


def test_full_space_reaches_the_hand_computed_max_away_from_the_minimum():
    g = torch.Generator().manual_seed(1)
    x_star = torch.randn(100, generator=g, dtype=torch.float64)
    offset = (0.1 + 0.4 * torch.rand(100, generator=g, dtype=torch.float64)) * torch.randn(100, generator=g).sign()
    model = Quadratic(x_star, torch.full((100,), 2.0, dtype=torch.float64), c=0.5, x=x_star + offset)
    result = epsilon_sharpness(model, quadratic_loss, epsilon=1e-2)
    exact = _exact_full_space_max(model, 1e-2)
    assert result.loss == pytest.approx(float(model.loss().detach()))
    assert result.max_loss - result.loss == pytest.approx(exact - result.loss, rel=0.02)


@pytest.mark.parametrize("dims", [None, 10])
def test_sharper_quadratic_is_sharper(dims):
    flat, sharp = _quadratic(c=0.0), _quadratic(c=0.0)
    sharp.h.mul_(10)
    s_flat = epsilon_sharpness(flat, quadratic_loss, epsilon=1e-2, dims=dims).sharpness
    s_sharp = epsilon_sharpness(sharp, quadratic_loss, epsilon=1e-2, dims=dims).sharpness
    # At the minimum (loss 0) the ascent path depends only on gradient signs, equal for h and 10h.
    assert s_flat > 0
    assert s_sharp == pytest.approx(10 * s_flat, rel=1e-6)


def test_sharpness_is_zero_at_a_maximum():
    model = _quadratic()
    result = epsilon_sharpness(model, lambda m: 2 * m.c - m.loss(), epsilon=1e-2)
    assert result.sharpness == 0.0 and result.max_loss == result.loss


def test_random_subspace_is_below_the_full_space():
    # Robust, not just in expectation: with A orthonormal and |x| = O(1), the subspace box
    # holds p = 10 coordinates of size ≈ ε·(|(Aᵀx)_i| + 1), the full box n = 200, so every
    # draw lands an order of magnitude below the full-space value (checked over five seeds).
    model = _quadratic()
    full = epsilon_sharpness(model, quadratic_loss, epsilon=1e-2).sharpness
    subspace = [epsilon_sharpness(model, quadratic_loss, epsilon=1e-2, dims=10, seed=s).sharpness
                for s in range(5)]
    assert all(0 < s < full for s in subspace)
    assert sum(subspace) / len(subspace) < 0.5 * full


def test_subspace_products_regenerated_in_chunks_match_a_stored_matrix(monkeypatch):
    n, p = 400, 10
    monkeypatch.setattr(sharpness_module, "EXACT_QR_MAX_ELEMENTS", 0)
    monkeypatch.setattr(sharpness_module, "CHUNK_ELEMENTS", 3 * n)  # blocks of 3, 3, 3 and 1 columns
    chunked = sharpness_module._Subspace(n, p, seed=3, device=torch.device("cpu"), dtype=torch.float64)
    assert chunked.matrix is None and chunked.block == 3
    matrix = torch.stack([chunked.apply(column) for column in torch.eye(p, dtype=torch.float64)], dim=1)
    v = torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(chunked.adjoint(v), matrix.T @ v)  # the same columns at every call
    gram = matrix.T @ matrix  # nearly orthonormal: unit diagonal, off-diagonal ~ 1/√n
    assert (gram.diagonal() - 1).abs().max() < 0.3
    assert (gram - torch.diag(gram.diagonal())).abs().max() < 5 / math.sqrt(n)
    model = _quadratic(n=n)
    full = epsilon_sharpness(model, quadratic_loss, epsilon=1e-2).sharpness
    assert 0 < epsilon_sharpness(model, quadratic_loss, epsilon=1e-2, dims=p).sharpness < full

    monkeypatch.setattr(sharpness_module, "EXACT_QR_MAX_ELEMENTS", 20_000_000)
    stored = sharpness_module._Subspace(n, p, seed=3, device=torch.device("cpu"), dtype=torch.float64)
    torch.testing.assert_close(stored.matrix.T @ stored.matrix, torch.eye(p, dtype=torch.float64))


def test_deterministic_given_the_seed():
    model = _quadratic()
    for dims in (None, 10):
        runs = [epsilon_sharpness(model, quadratic_loss, epsilon=1e-2, dims=dims, seed=7) for _ in range(2)]
        assert runs[0] == runs[1]
    other = epsilon_sharpness(model, quadratic_loss, epsilon=1e-2, dims=10, seed=8)
    assert other.sharpness != runs[0].sharpness


@pytest.fixture(scope="module")
def trained_mlp():
    """An MLP with BatchNorm trained for 40 SGD steps on the synthetic task, and its data."""
    data = load_dataset("synthetic", {"train_size": 512, "test_size": 256, "dim": 10})
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes,
                        options={"hidden": (32, 32)})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for step in range(40):
        batch = slice(64 * (step % 8), 64 * (step % 8 + 1))
        F.cross_entropy(model(data.train_x[batch]), data.train_y[batch]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return model, data


def _train_loss(data):
    return lambda model: F.cross_entropy(model(data.train_x[:256]), data.train_y[:256])


@pytest.mark.parametrize("dims", [None, 20])
def test_trained_mlp_has_finite_positive_sharpness(trained_mlp, dims):
    model, data = trained_mlp
    result = epsilon_sharpness(model, _train_loss(data), epsilon=1e-3, dims=dims)
    assert math.isfinite(result.sharpness) and result.sharpness > 0
    with torch.no_grad():
        assert result.loss == pytest.approx(float(_train_loss(data)(model)), rel=1e-6)


def test_parameters_and_buffers_restored_bit_for_bit(trained_mlp):
    model, data = trained_mlp
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the wrong mode on purpose: the loss calls update BN running statistics
    try:
        epsilon_sharpness(model, _train_loss(data), epsilon=1e-2, steps=3)
        calls = []

        def failing(m):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("boom")
            return _train_loss(data)(m)

        with pytest.raises(RuntimeError, match="boom"):
            epsilon_sharpness(model, failing, epsilon=1e-2, dims=5)
    finally:
        model.eval()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_a_loss_that_blows_up_inside_the_box_is_infinitely_sharp():
    model = Quadratic(torch.tensor([0.5]), torch.tensor([1.0]))
    result = epsilon_sharpness(model, lambda m: -torch.log(m.x).sum(), epsilon=1.0)  # the box reaches x < 0
    assert result.max_loss == math.inf and result.sharpness == math.inf
    nan_model = Quadratic(torch.tensor([-0.5]), torch.tensor([1.0]))
    assert math.isnan(epsilon_sharpness(nan_model, lambda m: torch.log(m.x).sum()).sharpness)


def test_invalid_arguments_are_errors():
    model = _quadratic(n=5)
    for kwargs, match in (({"epsilon": 0.0}, "epsilon"), ({"steps": 0}, "steps"), ({"dims": 0}, "dims"),
                          ({"dims": 6}, r"dims must be in \[1, 5\]")):
        with pytest.raises(ValueError, match=match):
            epsilon_sharpness(model, quadratic_loss, **kwargs)

    def detached(m):
        with torch.no_grad():
            return m.loss()

    with pytest.raises(ValueError, match="no_grad"):
        epsilon_sharpness(model, detached)
    with pytest.raises(ValueError, match="no trainable parameters"):
        epsilon_sharpness(nn.ReLU(), lambda m: torch.zeros(()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sharpness_on_cuda_matches_the_hand_computed_max():
    model = _quadratic().cuda()
    result = epsilon_sharpness(model, quadratic_loss, epsilon=1e-2)
    exact = _exact_full_space_max(model, 1e-2)
    assert result.max_loss - 1.0 == pytest.approx(exact - 1.0, rel=0.02)
    assert 0 < epsilon_sharpness(model, quadratic_loss, epsilon=1e-2, dims=10).sharpness < result.sharpness


# -- 1-D interpolation ----------------------------------------------------------------------


def _mlp_state(seed: int, data, forward_passes: int) -> dict:
    torch.manual_seed(seed)
    model = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes,
                        options={"hidden": (16,)})
    model.train()
    with torch.no_grad():
        for _ in range(forward_passes):  # distinct BN running statistics and num_batches_tracked
            model(data.train_x[:64] * (1 + seed))
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def two_solutions(trained_mlp):
    _, data = trained_mlp
    state_a, state_b = _mlp_state(1, data, 1), _mlp_state(2, data, 3)
    model = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes, options={"hidden": (16,)})

    @torch.no_grad()
    def evaluate(m):
        m.eval()
        out = []
        for x, y in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
            logits = m(x)
            out += [float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())]
        return tuple(out)

    return model, state_a, state_b, evaluate


def test_endpoints_are_exactly_the_two_solutions(two_solutions):
    model, state_a, state_b, evaluate = two_solutions
    result = interpolate(model, state_a, state_b, evaluate, alphas=[0.0, 0.5, 1.0], labels=("small", "large"))
    for index, state in ((0, state_a), (2, state_b)):
        model.load_state_dict(state)
        expected = evaluate(model)
        assert (result.train_loss[index], result.train_acc[index], result.test_loss[index],
                result.test_acc[index]) == expected
    assert result.alphas == [0.0, 0.5, 1.0] and result.labels == ("small", "large")


def test_floating_tensors_are_interpolated_and_integer_buffers_copied_from_a(two_solutions):
    _, state_a, state_b, _ = two_solutions
    mixed = interpolate_state(state_a, state_b, 0.25)
    for key in ("net.1.weight", "net.2.running_mean", "net.2.running_var"):
        torch.testing.assert_close(mixed[key], 0.75 * state_a[key] + 0.25 * state_b[key])
    assert int(state_a["net.2.num_batches_tracked"]) == 1 and int(state_b["net.2.num_batches_tracked"]) == 3
    assert torch.equal(mixed["net.2.num_batches_tracked"], state_a["net.2.num_batches_tracked"])
    assert all(torch.equal(interpolate_state(state_a, state_b, 0.0)[k], state_a[k]) for k in state_a)
    assert all(torch.equal(interpolate_state(state_a, state_b, 1.0)[k], state_b[k]) for k in state_a
               if state_a[k].is_floating_point())


def test_recalibrate_recomputes_bn_statistics_at_every_alpha(two_solutions, trained_mlp):
    """Running variances extrapolated past α = 1 can turn negative; recomputed on training batches
    at each α (the default of ``scalestudy interpolate``) they are those of θ(α)'s own activations."""
    from scalestudy.models.precise_bn import recompute_running_stats

    model, state_a, state_b, evaluate = two_solutions
    _, data = trained_mlp
    shrunk = {**state_b, "net.2.running_var": 0.1 * state_a["net.2.running_var"]}
    assert (interpolate_state(state_a, shrunk, 2.0)["net.2.running_var"] < 0).all()  # the artifact
    seen = []

    def recalibrate(m):
        recompute_running_stats(m, [data.train_x[:64], data.train_x[64:128]])
        seen.append(m.state_dict()["net.2.running_var"].clone())

    result = interpolate(model, state_a, shrunk, evaluate, alphas=[0.0, 2.0], recalibrate=recalibrate)
    assert len(seen) == 2 and all((v > 0).all() for v in seen)
    assert all(math.isfinite(v) for v in result.test_loss)
    model.load_state_dict(interpolate_state(state_a, shrunk, 2.0))
    recompute_running_stats(model, [data.train_x[:64], data.train_x[64:128]])
    assert result.test_loss[1] == pytest.approx(evaluate(model)[2])


def test_model_state_is_restored(two_solutions):
    model, state_a, state_b, evaluate = two_solutions
    model.load_state_dict(state_b)
    interpolate(model, state_a, state_b, evaluate, alphas=[0.3])
    assert all(torch.equal(v, state_b[k]) for k, v in model.state_dict().items())


def test_linear_regression_loss_is_the_closed_form_parabola():
    g = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(50, 3, generator=g, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    y_train, y_test = x_train.sum(1, keepdim=True), x_test.sum(1, keepdim=True)
    model = nn.Linear(3, 1).double()
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in nn.Linear(3, 1).double().state_dict().items()})

    def evaluate(m):
        with torch.no_grad():
            return (float(F.mse_loss(m(x_train), y_train)), 0.0, float(F.mse_loss(m(x_test), y_test)), 0.0)

    result = interpolate(model, *states, evaluate)
    assert result.alphas == list(DEFAULT_ALPHAS)
    for x, y, losses in ((x_train, y_train, result.train_loss), (x_test, y_test, result.test_loss)):
        # The residual is affine in α: r(α) = r_A + α·Δr, so the MSE is a parabola in α.
        r_a = x @ states[0]["weight"].T + states[0]["bias"] - y
        delta = x @ (states[1]["weight"] - states[0]["weight"]).T + states[1]["bias"] - states[0]["bias"]
        a, b, c = float((delta**2).mean()), float(2 * (r_a * delta).mean()), float((r_a**2).mean())
        assert losses == pytest.approx([a * t**2 + b * t + c for t in result.alphas], rel=1e-9)
        assert all(losses[i - 1] - 2 * losses[i] + losses[i + 1] > 0 for i in range(1, len(losses) - 1))


def test_default_alphas_span_minus_one_to_two_through_both_solutions():
    assert len(DEFAULT_ALPHAS) == 25 and DEFAULT_ALPHAS[0] == -1.0 and DEFAULT_ALPHAS[-1] == 2.0
    assert 0.0 in DEFAULT_ALPHAS and 1.0 in DEFAULT_ALPHAS


def test_mismatched_state_dicts_are_clear_errors(two_solutions, trained_mlp):
    model, state_a, state_b, evaluate = two_solutions
    wider = build_model("mlp", input_shape=trained_mlp[1].input_shape, num_classes=trained_mlp[1].num_classes,
                        options={"hidden": (24,)}).state_dict()
    with pytest.raises(ValueError, match=r"'net.1.weight' has shape \(16, 10\) in state_a but \(24, 10\)"):
        interpolate(model, state_a, wider, evaluate)
    missing = {k: v for k, v in state_b.items() if k != "net.2.running_var"}
    with pytest.raises(ValueError, match="different keys.*net.2.running_var"):
        interpolate(model, state_a, missing, evaluate)
    with pytest.raises(ValueError, match="the model's state dict"):
        interpolate(nn.Linear(10, 4), state_a, state_b, evaluate)
    with pytest.raises(ValueError, match="labels"):
        interpolate(model, state_a, state_b, evaluate, labels=("a", "b", "c"))


def _result_with_a_blow_up() -> InterpolationResult:
    alphas = list(DEFAULT_ALPHAS)
    train = [0.05 + 0.6 * (a - 0.4) ** 2 for a in alphas]
    test = [0.3 + 0.5 * (a - 0.45) ** 2 for a in alphas]
    train[-1], test[-1] = math.inf, math.nan  # a diverged end of the path
    acc = [max(0.1, 1 - 0.25 * (a - 0.4) ** 2) for a in alphas]
    return InterpolationResult(alphas, train, acc, test, [0.9 * v for v in acc],
                               labels=("B=64 lr=0.1", "B=4096 lr=0.8"))


def test_json_round_trip_is_strict_json():
    result = _result_with_a_blow_up()
    data = json.loads(to_json(result))
    assert data == to_dict(result) and data["train_loss"][-1] is None
    back = from_dict(data)
    assert back.train_loss[:-1] == result.train_loss[:-1] and math.isnan(back.train_loss[-1])
    assert back.labels == result.labels and back.alphas == result.alphas


def test_plot_writes_a_png(tmp_path):
    path = plot_interpolation(_result_with_a_blow_up(), tmp_path / "interpolation.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
