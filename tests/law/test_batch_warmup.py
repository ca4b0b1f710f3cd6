"""The batch warmup from CBS(t): stages, rule, rounding, file round trip."""

import math

import pytest

from scalestudy.law.batch_warmup import BatchWarmup, scaled_lr, warmup_from_cbs
from scalestudy.law.cbs import CBS_SCHEMA, CBSCurve, CBSPoint
from scalestudy.law.records import Interval, LawFileError


def curve(points, rule="linear"):
    return CBSCurve(CBS_SCHEMA, 32, 0.1, 0.9, "sgd", rule, 0.01, 2048, 4000, 40000, tuple(points))


def point(i, examples, cbs, low, high, censored=None, tested=(32, 64, 128, 256, 512)):
    return CBSPoint(i, examples, examples // 32, 1.0, cbs, Interval(low, high) if low else None, censored, tested)


def test_stages_follow_the_lower_bound_by_whole_factors_and_never_shrink():
    warmup = warmup_from_cbs(curve([point(0, 1000, 50, 40, 70), point(1, 5000, 200, 130, 300),
                                    point(2, 9000, 120, 70, 200), point(3, 20000, None, None, None, "above")]))
    assert [s.batch_size for s in warmup.stages] == [32, 128, 512]
    # stage starts on the previous stage's update boundary at or after the checkpoint
    assert warmup.stages[1].start_examples == 5024 and warmup.stages[1].start_step == 157
    assert warmup.stages[1].lr == pytest.approx(0.1 * 4)
    assert warmup.at_examples(5023).batch_size == 32 and warmup.at_step(157).batch_size == 128
    assert warmup.total_steps == 157 + (20000 - 5024) // 128 + (40000 - warmup.stages[2].start_examples) // 512


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
