"""Schedules, epoch by epoch, against hand-computed tables (the contract every schedule passes is in
test_contracts.py)."""

import math

import pytest

from scalestudy.schedules import (SCHEDULES, Hyper, cosine_factor, trajectory, update_lrs, warmup_factor,
                                  warmup_updates)
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


def test_warmup_ramps_lr_every_update_then_schedule_applies():
    """Goyal et al. 2017 §2.2: ε rises linearly per update across the warmup epochs.

    B = 4 then 8 (increase_batch at epoch 1) on N = 10: epochs of 10 // 4 = 2 and 10 // 8 = 1
    updates, so U = 3 warmup updates scaled by 1/4, 2/4, 3/4; epoch 2 is past the warmup.
    """
    schedule = Schedule(kind="increase_batch", milestones=[1], factor=2, warmup_epochs=2)
    initial = Hyper(batch_size=4, lr=0.3, momentum=0.9)
    assert warmup_updates(schedule, initial, dataset_size=10) == 3
    table = [update_lrs(schedule, initial, epoch, dataset_size=10, epochs=3) for epoch in range(3)]
    assert table[0] == pytest.approx([0.075, 0.15])
    assert table[1] == pytest.approx([0.225])
    assert table[2] is None
    # The schedule itself (what hyper_at gives) is untouched by the warmup.
    assert [h.lr for h in trajectory(schedule, initial, 3)] == [0.3] * 3


def test_warmup_factor_table():
    assert [warmup_factor(u, 4) for u in range(6)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0  # no warmup


def test_warmup_then_step_decay_keeps_the_schedule_after_warmup():
    schedule = Schedule(kind="step_decay_lr", milestones=[2], factor=10, warmup_epochs=1)
    assert update_lrs(schedule, INITIAL, 0, dataset_size=512, epochs=3) == pytest.approx([0.02, 0.04, 0.06, 0.08])
    assert update_lrs(schedule, INITIAL, 1, dataset_size=512, epochs=3) is None
    assert [round(h.lr, 10) for h in trajectory(schedule, INITIAL, 3)] == [0.1, 0.1, 0.01]


def test_registry_lists_all_kinds():
    assert SCHEDULES.names() == sorted(["constant", "step_decay_lr", "increase_batch", "hybrid", "increase_momentum",
                                        "cosine_decay_lr"])


def cosine_closed_form(lr: float, update: int, warmup: int, total: int) -> float:
    """Linear warmup (u+1)/(U+1), then ε·½(1 + cos(π·(u − U)/(T − U))), written out once more."""
    if update < warmup:
        return lr * (update + 1) / (warmup + 1)
    return lr * (1 + math.cos(math.pi * (update - warmup) / (total - warmup))) / 2


@pytest.mark.parametrize("warmup_epochs", [0, 2])
def test_cosine_decay_lr_follows_its_closed_form_every_update(warmup_epochs):
    """N = 512, B = 128: 4 updates per epoch, 6 epochs, T = 24 updates, U = 4·warmup_epochs."""
    schedule = Schedule(kind="cosine_decay_lr", warmup_epochs=warmup_epochs)
    lrs = [lr for epoch in range(6) for lr in update_lrs(schedule, INITIAL, epoch, dataset_size=512, epochs=6)]
    warmup = 4 * warmup_epochs
    assert lrs == pytest.approx([cosine_closed_form(0.1, u, warmup, 24) for u in range(24)], rel=1e-12)
    assert lrs[warmup] == pytest.approx(0.1)  # the peak right after the warmup
    assert 0 < lrs[-1] < 0.1 * 0.01  # next to 0 at the end of the run
    assert all(a > b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # decays every update
    # Epoch by epoch it is constant: the decay is per update, like the warmup.
    assert [h.lr for h in trajectory(schedule, INITIAL, 6)] == [0.1] * 6


def test_cosine_decay_lr_matches_torch_cosine_annealing_stepped_per_update():
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20, eta_min=0.0)
    expected = []
    for _ in range(20):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        annealing.step()
    schedule = Schedule(kind="cosine_decay_lr")
    lrs = [lr for epoch in range(5) for lr in update_lrs(schedule, INITIAL, epoch, dataset_size=512, epochs=5)]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_cosine_factor_table():
    assert [cosine_factor(u, 2, 6) for u in range(6)] == pytest.approx([1, 1, 1, (1 + math.cos(math.pi / 4)) / 2,
                                                                        0.5, (1 + math.cos(3 * math.pi / 4)) / 2])


@pytest.mark.parametrize("extra", [{"milestones": [2]}, {"max_batch_size": 256}])
def test_cosine_decay_lr_refuses_milestones_it_would_ignore(extra):
    with pytest.raises(ValueError, match="decays ε every update over the whole run"):
        Schedule(kind="cosine_decay_lr", **extra)
