"""Steps to the constant run's final loss (issue 23's comparison) on hand-built curves."""

import pandas as pd
import pytest

from scalestudy.analysis.fits.warmup_comparison import compare_to_constant, reached


def curves() -> pd.DataFrame:
    rows = []

    def run(kind, seed, updates, losses):
        rows.extend({"kind": kind, "seed": seed, "epoch": e + 1, "updates": u, "examples": 16 * u, "loss": l}
                    for e, (u, l) in enumerate(zip(updates, losses)))

    run("constant", 0, [100, 200, 300, 400], [4.0, 3.0, 2.0, 1.0])  # target of seed 0: 1.0 at 400 updates
    run("constant", 1, [100, 200, 300, 400], [4.0, 3.0, 2.5, 1.5])  # target of seed 1: 1.5 at 400
    run("warmup", 0, [100, 150, 175, 200], [4.0, 2.5, 1.2, 0.9])  # reaches 1.0 at 200: ratio 0.5
    run("warmup", 1, [100, 150, 175, 200], [4.0, 2.0, 1.4, 1.0])  # reaches 1.5 at 175: ratio 0.4375
    run("late_switch", 0, [100, 200, 300, 325], [4.0, 3.0, 2.0, 1.0])  # reaches 1.0 at 325: 0.8125
    run("late_switch", 1, [100, 200, 300, 325], [4.0, 3.0, 2.5, 1.6])  # never reaches 1.5
    return pd.DataFrame(rows)


def test_ratios_to_the_constant_runs_final_loss_with_a_student_t_interval():
    comparison = compare_to_constant(curves())
    assert comparison.targets == {0: 1.0, 1: 1.5}
    kinds = {k.kind: k for k in comparison.kinds}
    assert [k.kind for k in comparison.kinds] == ["constant", "late_switch", "warmup"]
    warmup = kinds["warmup"]
    assert warmup.steps_ratio.per_seed == (0.5, 0.4375) and warmup.steps_ratio.mean == pytest.approx(0.46875)
    # sd(0.5, 0.4375) = 0.0625/√2; half width t(0.975, 1)·sd/√2 = 12.7062·0.03125
    assert warmup.steps_ratio.ci95.low == pytest.approx(0.46875 - 12.7062 * 0.03125, abs=1e-3)
    assert warmup.steps_ratio.ci95.high == pytest.approx(0.46875 + 12.7062 * 0.03125, abs=1e-3)
    assert warmup.examples_ratio.per_seed == (0.5, 0.4375)  # examples ∝ updates here
    assert warmup.final_loss == pytest.approx(0.95) and warmup.total_updates == 200
    late = kinds["late_switch"]
    assert late.not_reached == 1 and late.steps_ratio.per_seed == (0.8125,) and late.steps_ratio.ci95 is None
    assert kinds["constant"].steps_ratio.mean == 1.0


def test_reached_is_the_first_epoch_end_at_or_below_the_target():
    run = curves().query("kind == 'warmup' and seed == 0")
    assert reached(run, 2.5) == (150, 2400)
    assert reached(run, 0.5) is None
