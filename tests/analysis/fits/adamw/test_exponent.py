"""y* ∝ B^x across cells (fits/adamw/exponent.py) against closed forms, and the whole AdamW fit on a
planted study (τ*_epoch constant, λ* ∝ B) through law.json."""

import numpy as np
import pytest

from scalestudy.analysis.fits.adamw.exponent import fit_exponent, fit_level
from scalestudy.analysis.fits.adamw.timescales import fit_adamw
from scalestudy.analysis.fits.study import fit_study
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.analysis.outputs.mlflow_run import run_metrics
from scalestudy.analysis.outputs.report import report_markdown
from scalestudy.law import ScalingLaw
from scalestudy.testing.adamw_studies import GAUSSIAN, DecayDesign, decay_study

B = np.array([16, 32, 64, 128, 256, 512], float)


def test_an_exact_power_law_gives_its_exponent_and_rejects_another():
    """ln y = 0.7 ln B + noise of sd 0.05 (known): x̂ within 0.05 of 0.7, p against 1 tiny, against 0.7 not."""
    noise = np.random.default_rng(0).normal(0, 0.05, len(B))
    values = 3.0 * B ** 0.7 * np.exp(noise)
    fit = fit_exponent(B, values, [0.05 ** 2] * len(B), ["a"] * len(B), hypothesis=1.0)
    assert fit.exponent == pytest.approx(0.7, abs=0.05) and fit.ci95[0] < 0.7 < fit.ci95[1]
    assert fit.p_value < 1e-3
    assert fit_exponent(B, values, [0.05 ** 2] * len(B), ["a"] * len(B), hypothesis=0.7).p_value > 0.05


def test_groups_keep_their_own_level_and_share_the_slope():
    """Two momenta ×10 apart with the same slope 1: exactly 1, each group's level predicted."""
    groups = ["m=0"] * len(B) + ["m=0.9"] * len(B)
    values = np.concatenate([0.01 * B, 0.1 * B])
    fit = fit_exponent(np.concatenate([B, B]), values, [0.01] * 12, groups, hypothesis=1.0)
    assert fit.exponent == pytest.approx(1.0)
    assert fit.predict(100, "m=0.9")[0] == pytest.approx(10.0)
    assert fit.predict(100, "m=0")[0] == pytest.approx(1.0)


def test_one_batch_size_gives_no_exponent_and_a_level_is_the_geometric_mean():
    assert fit_exponent([64, 64], [1.0, 2.0], [0.1, 0.1], ["a", "a"], 0.0).exponent is None
    level = fit_level([1.0, 4.0], [0.1, 0.1])
    assert level.value == pytest.approx(2.0) and level.ci95[0] < 2.0 < level.ci95[1]


def test_a_planted_study_reads_back_from_law_json_within_its_intervals(tmp_path):
    """Known τ*_epoch and λ* ∝ B (Gaussian peaks in ln λ): law.json's intervals hold x = 1, x = 0 and τ*."""
    study = decay_study(np.random.default_rng(5), DecayDesign(seeds=3), shape=GAUSSIAN)
    fits = fit_study(study.frame)
    law = ScalingLaw.load(build_law(fits).save(tmp_path / "law.json"))
    adamw = law.adamw
    assert adamw.weight_decay_vs_batch.ci95.low <= 1 <= adamw.weight_decay_vs_batch.ci95.high
    assert adamw.tau_epoch_vs_batch.ci95.low <= 0 <= adamw.tau_epoch_vs_batch.ci95.high
    assert adamw.tau_epoch_ci95.low <= study.tau_epoch <= adamw.tau_epoch_ci95.high
    truth = study.weight_decay_opt(adamw.reference_batch_size)
    assert adamw.weight_decay_reference_ci95.low <= truth <= adamw.weight_decay_reference_ci95.high
    assert adamw.beta2_half_life.examples == 2.0e4 and adamw.beta2_half_life.source == "spec"
    assert len(adamw.cells) == 6 and adamw.beta1 == 0.9
    report = report_markdown(fits, law, [], [], [])
    assert "## AdamW timescales" in report and "Power Lines" in report
    metrics = run_metrics(law)  # the analysis run's
    assert metrics["law.adamw.tau_epoch"] == adamw.tau_epoch
    assert metrics["law.adamw.weight_decay_exponent_p"] == adamw.weight_decay_vs_batch.p_value


def test_half_lives_not_held_fixed_are_not_reported():
    frame = decay_study(np.random.default_rng(6), DecayDesign(batch_sizes=(32, 128, 512)), shape=GAUSSIAN).frame
    frame.loc[frame["batch_size"] == 32, "beta2_half_life_examples"] = 1.0e4
    assert fit_adamw(frame).beta2_half_life is None
    assert fit_adamw(frame.drop(columns="beta2_half_life_examples")).beta2_half_life is None


def test_the_planted_adamw_table_of_planted_py_has_its_tau_epoch():
    from scalestudy.testing.planted import make_planted_adamw_table

    fit = fit_adamw(make_planted_adamw_table(tau_epoch=3.0, batch_sizes=(32, 128, 512)))
    assert fit.tau_epoch.ci95[0] <= 3.0 <= fit.tau_epoch.ci95[1]
    assert fit.weight_decay_vs_batch.ci95[0] <= 1.0 <= fit.weight_decay_vs_batch.ci95[1]
