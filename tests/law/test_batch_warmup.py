"""The batch warmup from CBS(t): stages, rule, rounding, file round trip."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalestudy.law.batch_warmup import BatchWarmup, scaled_lr, warmup_from_cbs
from scalestudy.law.cbs import CBS_SCHEMA, CBSCurve, CBSPoint
from scalestudy.law.records import Interval, LawError, LawFileError


def curve(points, rule="linear"):
    return CBSCurve(CBS_SCHEMA, 32, 0.1, 0.9, "sgd", rule, 0.01, 2048, 4000, 40000, tuple(points))


def point(i, examples, cbs, low, high, censored=None, tested=(32, 64, 128, 256, 512)):
    return CBSPoint(i, examples, examples // 32, 1.0, cbs, Interval(low, high) if low else None, censored, tested)


def test_stages_follow_the_lower_bound_by_whole_factors_and_never_shrink():
    warmup = warmup_from_cbs(curve([point(0, 1000, 50, 40, 70), point(1, 5000, 200, 130, 300),
                                    point(2, 9000, 120, 70, 200), point(3, 20000, None, None, None, "above")]))
    assert [s.batch_size for s in warmup.stages] == [32, 128, 512]
    # A stage starts at the first of the previous stage's update boundaries at or after the checkpoint
    # where the examples seen are a whole multiple of its own B (5000 → 5120 = 40 × 128 = 160 × 32).
    assert warmup.stages[1].start_examples == 5120 and warmup.stages[1].start_step == 160
    assert warmup.stages[2].start_examples == 20480 and warmup.stages[2].start_step == 160 + (20480 - 5120) // 128
    assert warmup.stages[1].lr == pytest.approx(0.1 * 4)
    assert warmup.at_examples(5119).batch_size == 32 and warmup.at_step(160).batch_size == 128
    assert warmup.total_steps == 160 + (20480 - 5120) // 128 + (40000 - 20480) // 512


def test_sqrt_rule_cap_and_estimate_basis():
    warmup = warmup_from_cbs(curve([point(0, 1000, 300, 100, 600)], rule="sqrt"), basis="estimate",
                             max_batch_size=200)
    assert [s.batch_size for s in warmup.stages] == [32, 128]
    assert warmup.stages[1].lr == pytest.approx(0.1 * math.sqrt(4))
    assert scaled_lr(0.1, 32, 64, "linear") == pytest.approx(0.2)


def test_round_trip_and_a_broken_file(tmp_path):
    warmup = warmup_from_cbs(curve([point(0, 1000, 300, 100, 600)]))
    assert BatchWarmup.load(warmup.save(tmp_path / "w.json")) == warmup
    data = warmup.to_dict()
    data["stages"][1]["batch_size"] = 100
    with pytest.raises(LawFileError, match="whole multiple"):
        BatchWarmup.from_dict(data)


def test_a_point_without_a_lower_bound_admits_no_growth_under_ci_low():
    no_interval = [point(0, 1000, 300, None, None)]
    assert [s.batch_size for s in warmup_from_cbs(curve(no_interval)).stages] == [32]
    assert [s.batch_size for s in warmup_from_cbs(curve(no_interval), basis="estimate").stages] == [32, 256]


def test_a_checkpoint_at_the_very_start_still_gives_the_base_one_update():
    warmup = warmup_from_cbs(curve([point(0, 0, 300, 100, 600)]))
    assert warmup.stages[1].start_examples == 64 and warmup.stages[1].start_step == 2  # 64 = 1 × 64 = 2 × 32


@pytest.mark.parametrize("kwargs, message", [({"factor": 1}, "factor 1: must be a whole number ≥ 2"),
                                             ({"factor": 2.0}, "factor 2.0"), ({"basis": "mean"}, "basis 'mean'"),
                                             ({"max_batch_size": 16}, "must be ≥ the base batch size 32"),
                                             ({"total_examples": 10}, "total_examples 10"),
                                             ({"total_examples": 0}, "total_examples 0")])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        warmup_from_cbs(curve([point(0, 1000, 300, 100, 600)]), **kwargs)


@pytest.mark.parametrize("stage, message", [({"start_examples": 1056, "start_step": 33}, "not a whole multiple of it"),
                                            ({"start_step": 7}, "starts at step 7; 32 updates of 32")])
def test_a_stage_out_of_step_with_its_updates_is_refused(stage, message):
    data = warmup_from_cbs(curve([point(0, 1000, 300, 100, 600)])).to_dict()
    data["stages"][1].update(stage)
    with pytest.raises(LawFileError, match=message):
        BatchWarmup.from_dict(data)


def test_a_curve_without_a_positive_base_is_refused_in_one_line():
    bad = dataclasses.replace(curve([point(0, 1000, 300, 100, 600)]), base_batch_size=0)
    with pytest.raises(LawError, match=r"^cbs.json: base_batch_size 0, dataset_size 4000 and base_lr 0.1 must be"):
        warmup_from_cbs(bad, source="cbs.json")


def test_a_stage_without_a_whole_update_before_the_end_is_not_begun():
    late = [point(0, 39_950, 300, 100, 600)]  # B 64 would start at 40 000, the run's end
    assert [s.batch_size for s in warmup_from_cbs(curve(late)).stages] == [32]
    assert [s.batch_size for s in warmup_from_cbs(curve(late), total_examples=40_000 + 64).stages] == [32, 64]


@settings(max_examples=60, deadline=None)
@given(base=st.integers(1, 64), factor=st.integers(2, 4), total=st.integers(64, 100_000),
       cap=st.one_of(st.none(), st.integers(64, 4096)), basis=st.sampled_from(["ci_low", "estimate"]),
       checkpoints=st.lists(st.tuples(st.integers(0, 100_000), st.floats(0.5, 5000), st.floats(0.1, 1.0),
                                      st.sampled_from([None, "above", "below"])), max_size=6))
def test_any_curve_gives_a_warmup_every_trainer_can_follow(base, factor, total, cap, basis, checkpoints):
    points = [CBSPoint(i, examples, examples // base, 1.0, cbs, Interval(cbs * low, cbs), censored, (base, 8 * base))
              for i, (examples, cbs, low, censored) in enumerate(sorted(checkpoints, key=lambda c: c[0]))]
    cbs_curve = CBSCurve(CBS_SCHEMA, base, 0.1, 0.9, "sgd", "linear", 0.01, 64, 1000, max(total, base), tuple(points))
    warmup = warmup_from_cbs(cbs_curve, factor=factor, basis=basis, max_batch_size=max(cap or base, base))
    assert BatchWarmup.from_dict(warmup.to_dict()) == warmup  # its own check passes
    for before, after in zip(warmup.stages, warmup.stages[1:]):
        assert after.batch_size // before.batch_size in (factor ** j for j in range(1, 12))
        assert after.start_examples % after.batch_size == 0 and after.start_examples + after.batch_size <= total
        assert after.lr == pytest.approx(0.1 * after.batch_size / base)
    assert warmup.stages[-1].batch_size <= max(cap or 10**9, base)
    assert warmup.examples_before(warmup.total_steps) <= warmup.total_examples


def test_scaled_lr_closed_forms_and_the_law_rules_exponent():
    # ε(B) = ε₀·(B/B₀)^a: a = 1 (linear), ½ (sqrt), the law's α (law); B/B₀ = 8.
    assert scaled_lr(0.1, 32, 256, "linear") == pytest.approx(0.8)
    assert scaled_lr(0.1, 32, 256, "sqrt") == pytest.approx(0.1 * math.sqrt(8))
    assert scaled_lr(0.1, 32, 256, "law", 0.75) == pytest.approx(0.1 * 8 ** 0.75)  # = 0.1·2^2.25 = 0.4757
    assert scaled_lr(0.1, 32, 256, "law", 0.75) == pytest.approx(0.47568, rel=1e-4)
    with pytest.raises(ValueError, match="the law rule needs a finite exponent"):
        scaled_lr(0.1, 32, 256, "law")
    with pytest.raises(ValueError, match="only the law rule has one"):
        scaled_lr(0.1, 32, 256, "linear", 0.75)


def test_a_law_curve_gives_stage_lrs_by_its_exponent_and_keeps_it(tmp_path):
    law_curve = dataclasses.replace(curve([point(0, 1000, 300, 300, 600)], rule="law"), rule_exponent=0.6)
    warmup = warmup_from_cbs(law_curve)
    assert [s.batch_size for s in warmup.stages] == [32, 256]
    assert warmup.stages[1].lr == pytest.approx(0.1 * 8 ** 0.6)  # ε₀·(B/B₀)^α
    assert warmup.rule == "law" and warmup.rule_exponent == 0.6
    assert BatchWarmup.load(warmup.save(tmp_path / "w.json")) == warmup
    assert CBSCurve.load(law_curve.save(tmp_path / "cbs.json")) == law_curve
    with pytest.raises(LawFileError, match="the law rule needs a finite exponent"):
        dataclasses.replace(law_curve, rule_exponent=None).check()
    with pytest.raises(LawFileError, match="only the law rule has one"):
        dataclasses.replace(law_curve, rule="sqrt").check()


def test_files_written_before_the_law_rule_still_load(tmp_path):
    old = curve([point(0, 1000, 300, 100, 600)]).to_dict()
    del old["rule_exponent"]
    assert CBSCurve.from_dict(old).rule_exponent is None
    warmup = warmup_from_cbs(CBSCurve.from_dict(old)).to_dict()
    del warmup["rule_exponent"]
    assert BatchWarmup.from_dict(warmup).rule_exponent is None
