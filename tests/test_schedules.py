"""Schedules, epoch by epoch, against hand-computed tables."""

import pytest

from scalestudy.noise import noise_scale
from scalestudy.schedules import SCHEDULES, Hyper, hyper_at, trajectory
from scalestudy.spec import Schedule

INITIAL = Hyper(batch_size=128, lr=0.1, momentum=0.9)


def table(schedule: Schedule, epochs: int = 8) -> list[tuple[int, float, float]]:
    return [(h.batch_size, round(h.lr, 10), round(h.momentum, 10)) for h in trajectory(schedule, INITIAL, epochs)]


def test_constant():
    assert table(Schedule(kind="constant"), 3) == [(128, 0.1, 0.9)] * 3


def test_step_decay_lr_divides_lr_at_milestones():
    schedule = Schedule(kind="step_decay_lr", milestones=[2, 5], factor=5)
    assert table(schedule) == [
        (128, 0.1, 0.9), (128, 0.1, 0.9),
        (128, 0.02, 0.9), (128, 0.02, 0.9), (128, 0.02, 0.9),
        (128, 0.004, 0.9), (128, 0.004, 0.9), (128, 0.004, 0.9),
    ]


def test_increase_batch_multiplies_batch_and_keeps_lr():
    schedule = Schedule(kind="increase_batch", milestones=[2, 5], factor=5)
    assert table(schedule) == [
        (128, 0.1, 0.9), (128, 0.1, 0.9),
        (640, 0.1, 0.9), (640, 0.1, 0.9), (640, 0.1, 0.9),
        (3200, 0.1, 0.9), (3200, 0.1, 0.9), (3200, 0.1, 0.9),
    ]


def test_hybrid_grows_batch_to_max_then_decays_lr():
    # Smith et al. 2018: 128 → 640 → 3200, then B·5 = 16000 > 5120, so ε ÷ 5.
    schedule = Schedule(kind="hybrid", milestones=[1, 2, 3, 4], factor=5, max_batch_size=5120)
    assert table(schedule, 6) == [
        (128, 0.1, 0.9), (640, 0.1, 0.9), (3200, 0.1, 0.9),
        (3200, 0.02, 0.9), (3200, 0.004, 0.9), (3200, 0.004, 0.9),
    ]


def test_increase_momentum_raises_m_and_effective_lr_falls_by_factor():
    schedule = Schedule(kind="increase_momentum", milestones=[2, 4], factor=5, momentum_factor=2)
    rows = trajectory(schedule, INITIAL, 6)
    assert [round(h.momentum, 10) for h in rows] == [0.9, 0.9, 0.95, 0.95, 0.975, 0.975]
    assert [h.batch_size for h in rows] == [128] * 6
    effective = [h.effective_lr for h in rows]
    assert effective[0] == pytest.approx(1.0)
    assert effective[2] == pytest.approx(1.0 / 5)
    assert effective[4] == pytest.approx(1.0 / 25)


@pytest.mark.parametrize("kind", ["step_decay_lr", "increase_batch", "hybrid", "increase_momentum"])
def test_every_dynamic_schedule_lowers_noise_scale_by_factor(kind):
    """The contract all schedules share: g falls by ``factor`` per milestone (B ≪ N)."""
    schedule = Schedule(kind=kind, milestones=[1, 2], factor=4, max_batch_size=10**9)
    n = 10**12  # N/B − 1 ≈ N/B
    g = [noise_scale(h.lr, h.momentum, n, h.batch_size) for h in trajectory(schedule, INITIAL, 3)]
    assert g[1] == pytest.approx(g[0] / 4, rel=1e-6)
    assert g[2] == pytest.approx(g[0] / 16, rel=1e-6)


def test_warmup_ramps_lr_linearly_then_schedule_applies():
    schedule = Schedule(kind="step_decay_lr", milestones=[4], factor=10, warmup_epochs=3)
    lrs = [round(h.lr, 10) for h in trajectory(schedule, INITIAL, 6)]
    assert lrs == [0.025, 0.05, 0.075, 0.1, 0.01, 0.01]


def test_registry_lists_all_kinds():
    assert SCHEDULES.names() == sorted(["constant", "step_decay_lr", "increase_batch", "hybrid", "increase_momentum"])


def test_schedules_are_pure():
    schedule = Schedule(kind="hybrid", milestones=[1, 3], factor=2, max_batch_size=256)
    assert hyper_at(schedule, INITIAL, 5) == hyper_at(schedule, INITIAL, 5)
    assert [hyper_at(schedule, INITIAL, e) for e in range(5)] == trajectory(schedule, INITIAL, 5)
