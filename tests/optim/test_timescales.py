"""The timescale conversions (scalestudy.optim.timescales) against their closed forms."""

import math

import numpy as np
import pytest

from scalestudy.optim import timescales


def test_weight_decay_from_tau_epoch_and_back():
    # Wang & Aitchison: τ_iter = 1/(ηλ) updates, N/B updates an epoch: τ_epoch = τ_iter·B/N.
    # B = 100, N = 10_000 (100 updates an epoch), η = 1e-3, τ_epoch = 2: τ_iter = 200 ⇒ λ = 1/(1e-3·200) = 5.
    decay = timescales.weight_decay_for_tau_epoch(2.0, 100, 1e-3, 10_000)
    assert decay == pytest.approx(5.0, rel=1e-12)
    assert timescales.tau_epoch(decay, 100, 1e-3, 10_000) == pytest.approx(2.0, rel=1e-12)
    # λ ∝ B at fixed τ, ε and N (Power Lines' λ_opt ∝ B); λ ∝ 1/ε and ∝ 1/N.
    assert timescales.weight_decay_for_tau_epoch(2.0, 400, 1e-3, 10_000) == pytest.approx(20.0)
    assert timescales.weight_decay_for_tau_epoch(2.0, 100, 2e-3, 20_000) == pytest.approx(1.25)


def test_tau_epoch_is_nan_without_decay_and_works_on_columns():
    assert math.isnan(timescales.tau_epoch(0.0, 64, 0.1, 1000))
    assert math.isnan(timescales.tau_epoch(math.nan, 64, 0.1, 1000))
    tau = timescales.tau_epoch(np.array([0.0, 0.5]), np.array([64, 128]), np.array([0.1, 0.1]), 1000)
    assert math.isnan(tau[0]) and tau[1] == pytest.approx(128 / (0.1 * 0.5 * 1000))


def test_beta2_from_half_life_and_back():
    # Marek et al.: β2 = ½^(B/h). h = B: β2 = ½; h = 4B: β2 = ½^(1/4).
    assert timescales.decay_for_half_life(256, 256) == pytest.approx(0.5)
    assert timescales.decay_for_half_life(1024, 256) == pytest.approx(0.5 ** 0.25)
    # The torch default 0.999 at B = 64 has a half-life of 64·ln½/ln 0.999 ≈ 44,338 examples.
    assert timescales.half_life_examples(0.999, 64) == pytest.approx(64 * math.log(0.5) / math.log(0.999))
    assert timescales.half_life_examples(timescales.decay_for_half_life(5000.0, 48), 48) == pytest.approx(5000.0)
    assert timescales.half_life_examples(0.0, 64) == 0.0 and math.isnan(timescales.half_life_examples(math.nan, 64))


def test_a_fixed_half_life_is_busbridges_rho_to_the_kappa():
    # Busbridge et al. 2023: B → κB makes ρ → ρ^κ; ½^(B/h) does exactly that.
    rho = timescales.decay_for_half_life(3000.0, 32)
    for kappa in (2, 8, 32):
        assert timescales.decay_for_half_life(3000.0, 32 * kappa) == pytest.approx(rho ** kappa, rel=1e-12)
