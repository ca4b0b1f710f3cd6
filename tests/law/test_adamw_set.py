"""recommend and plan give the whole AdamW set from a law with ``adamw`` (planted law files): ε, β1, β2,
λ and the EMA momentum, each with its interval and rule; past the surge's peak recommend refuses unless
forced and plan warns; an SGD law prints as before."""

import math

import pytest

from cli_in_process import run
from law_files import make_law
from scalestudy.law import Plan, PlanRequest, make_plan
from scalestudy.law.adamw_fields import AdamWTimescales, ExponentFit, HalfLife, SurgeTest
from scalestudy.law.adamw_rules import adamw_set
from scalestudy.law.guards import Guard
from scalestudy.law.recommendation import recommendation
from scalestudy.law.records import Interval, to_json

N = 50_000
TIMESCALES = AdamWTimescales(beta1=0.9, tau_epoch=0.5, tau_epoch_ci95=Interval(0.25, 1.0),
                             beta2_half_life=HalfLife(64_000.0, Interval(32_000.0, 128_000.0), "fitted"),
                             ema_half_life=HalfLife(1e6, None, "spec"))
SURGE = SurgeTest("peak", 512.0, Interval(400.0, 700.0), 0.004)


def adamw_law(timescales=TIMESCALES, surge=None):
    return make_law(optimizer="adamw", adamw=to_json(timescales), surge=to_json(surge) if surge else None,
                    breakdown_batch_size=None, breakdown_test=None, ci95={"k": [9e-4, 1.1e-3], "alpha": [0.98, 1.02],
                                                                         "beta": [0.97, 1.03]})


def test_each_setting_follows_its_rule_with_its_interval():
    law = adamw_law()
    prediction = law.predict(256, 0.9)
    found = adamw_set(law, prediction)
    lr = prediction.lr
    assert found.get("lr").value == lr and found.get("lr").ci95 == prediction.lr_ci95
    assert found.get("beta1").value == 0.9
    decay = found.get("weight_decay")
    assert decay.value == pytest.approx(256 / (lr * N * 0.5))  # τ_epoch = B/(ε·λ·N) held at 0.5 epochs
    assert decay.ci95 == pytest.approx((256 / (lr * N * 1.0), 256 / (lr * N * 0.25)))
    assert "Wang & Aitchison" in decay.rule
    beta2 = found.get("beta2")
    assert beta2.value == pytest.approx(0.5 ** (256 / 64_000)) and beta2.ci95[0] < beta2.value < beta2.ci95[1]
    assert found.get("ema").value == pytest.approx(0.5 ** (256 / 1e6)) and found.get("ema").ci95 is None
    # doubling B squares the EMA momentum (Busbridge et al.: ρ → ρ^κ)
    assert adamw_set(law, law.predict(512, 0.9)).get("ema").value == pytest.approx(found.get("ema").value ** 2)


def test_without_tau_the_weight_decay_follows_its_exponent_fit():
    timescales = AdamWTimescales(weight_decay_vs_batch=ExponentFit(1.0, Interval(0.8, 1.2), 1.0, 0.6, 8),
                                 weight_decay_reference=0.1, weight_decay_reference_ci95=Interval(0.08, 0.125),
                                 reference_batch_size=64)
    law = adamw_law(timescales)
    found = adamw_set(law, law.predict(256, 0.9))
    decay = found.get("weight_decay")
    assert decay.value == pytest.approx(0.4) and "Power Lines" in decay.rule
    low, high = decay.ci95
    assert low < 0.4 < high and math.log(0.4 / low) == pytest.approx(math.hypot(math.log(1.25), 0.2 * math.log(4)))
    assert found.get("beta2") is None and "beta2: the law has no half-life" in "\n".join(found.lines())


def test_recommend_prints_the_set_and_refuses_past_the_surge_peak(tmp_path):
    path = adamw_law(surge=SURGE).save(tmp_path / "law.json")
    code, out, err = run(["recommend", "--law", path, "--batch-size", 256, "--momentum", 0.9])
    assert code == 0, err
    assert out.startswith("lr = ") and "AdamW set at B=256, N=50000:" in out
    for name in ("beta1", "beta2", "weight_decay", "ema"):
        assert f"\n  {name}" in out
    code, out, err = run(["recommend", "--law", path, "--batch-size", 1024, "--momentum", 0.9])
    assert code == 2 and not out and err.count("\n") == 1 and "past the peak of ε*(B) at B ≈ 512" in err
    code, out, err = run(["recommend", "--law", path, "--batch-size", 1024, "--momentum", 0.9, "--force"])
    assert code == 0 and "FORCED" in err and "AdamW set at B=1024" in out


def test_an_sgd_law_prints_as_before(tmp_path):
    law = make_law()
    code, out, _ = run(["recommend", "--law", law.save(tmp_path / "law.json"), "--batch-size", 256, "--momentum", 0.9])
    assert code == 0 and out.splitlines() == recommendation(law, law.predict(256, 0.9))


def test_the_plan_carries_the_set_and_follows_b_through_a_hybrid_schedule(tmp_path):
    law = adamw_law(surge=SurgeTest("peak", 256.0, Interval(200.0, 330.0), 0.004))
    plan = make_plan(law, PlanRequest(4, 256, throughput=1e4, epochs=10, momentum=0.9, schedule="hybrid",
                                      factor=2.0, guard=Guard(force=True)))
    assert plan.adamw is not None and plan.adamw.beta1 == 0.9
    assert plan.adamw.beta2 == pytest.approx(0.5 ** (plan.batch_size / 64_000))
    assert plan.adamw.weight_decay == pytest.approx(plan.batch_size / (plan.lr * N * 0.5))
    assert any("past the peak" in w for w in plan.warnings)  # B = 480 (the critical batch size) > 256
    path = plan.save(tmp_path / "plan.yaml")
    assert Plan.load(path) == plan
    first, last = plan.epochs()[0], plan.epochs()[-1]
    assert first.batch_size < last.batch_size  # the hybrid schedule grows B: β2, λ and ρ follow it
    start, end = plan.adamw_at(0), plan.adamw_at(plan.total_updates - 1)
    assert start.beta2 == pytest.approx(0.5 ** (first.batch_size / 64_000)) and start.beta2 > end.beta2
    assert end.weight_decay == pytest.approx(last.batch_size / (last.lr * N * 0.5))
    assert start.ema ** (last.batch_size / first.batch_size) == pytest.approx(end.ema)


def test_a_plan_of_an_sgd_law_has_no_adamw_and_older_plans_load(tmp_path):
    plan = make_plan(make_law(), PlanRequest(4, 64, throughput=1e3, epochs=4, momentum=0.9, guard=Guard(force=True)))
    assert plan.adamw is None and plan.adamw_at(0) is None
    data = plan.to_dict()
    del data["adamw"]  # a plan written before the field existed
    assert Plan.from_dict(data) == plan
