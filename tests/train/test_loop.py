"""The epoch loop on its own: no Ray, no MLflow, real torch training on small data."""

import json
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scalestudy.models.ghost_bn import running_stat_buffers
from scalestudy.data.augment import random_crop_flip
from scalestudy.data.base import InMemoryDataset
from scalestudy.spec import spec_from_dict
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop, rank_batch
from scalestudy.train.target import Evaluation, crossing
from scalestudy.trial.config import expand_trials
from scalestudy.trial.record import trial_status

DEVICE = torch.device("cpu")


def trial(**overrides) -> dict:
    schedule = overrides.pop("schedule", {"kind": "constant"})
    diagnostics = overrides.pop("diagnostics", {})
    workload = {"dataset": "synthetic", "dataset_options": {"train_size": 1024, "test_size": 256},
                "model": "mlp", "model_options": {"hidden": [64]}, "epochs": overrides.pop("epochs", 4),
                "ghost_batch_size": 16}
    workload.update(overrides.pop("workload", {}))
    grid = {"batch_size": [64], "lr": [0.1], "momentum": [0.9], "seeds": [0]}
    grid.update(overrides)
    spec = spec_from_dict({"name": "t", "workload": workload, "grid": grid, "schedule": schedule,
                           "diagnostics": diagnostics, "resources": {"workers_per_trial": grid.pop("workers", 1)}})
    return expand_trials(spec)[0]


def run(config, device=DEVICE):
    torch.set_num_threads(1)
    return [r.metrics() for r in EpochLoop(config, Distributed(device=device)).run()]


def test_learns_and_reports_every_metric():
    reports = run(trial())
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4]
    assert reports[-1]["test_acc"] > 0.6  # 4 classes: chance is 0.25
    for key in ("epoch", "updates", "examples_seen", "batch_size", "lr", "momentum", "effective_lr",
                "noise_scale", "train_loss", "train_acc", "test_loss", "test_acc", "gen_gap",
                "epoch_seconds", "diverged"):
        assert all(key in r and math.isfinite(r[key]) for r in reports), key
    last = reports[-1]
    assert last["updates"] == 4 * (1024 // 64)
    assert last["examples_seen"] == 4 * 16 * 64
    assert last["effective_lr"] == pytest.approx(0.1 / (1 - 0.9))
    assert last["noise_scale"] == pytest.approx(0.1 / 0.1 * (1024 / 64 - 1))
    assert last["gen_gap"] == pytest.approx(last["train_acc"] - last["test_acc"])


def test_increase_batch_vs_step_decay_lr():
    grow = run(trial(schedule={"kind": "increase_batch", "milestones": [2], "factor": 4}))
    decay = run(trial(schedule={"kind": "step_decay_lr", "milestones": [2], "factor": 4}))
    steps = lambda rs: [b["updates"] - a["updates"] for a, b in zip([{"updates": 0}] + rs, rs)]  # noqa: E731
    assert [r["batch_size"] for r in grow] == [64, 64, 256, 256]
    assert [r["lr"] for r in grow] == [0.1] * 4
    assert steps(grow) == [16, 16, 4, 4]
    assert [r["batch_size"] for r in decay] == [64] * 4
    assert [r["lr"] for r in decay] == pytest.approx([0.1, 0.1, 0.025, 0.025])
    assert steps(decay) == [16] * 4
    # Same noise scale trajectory.
    assert [r["noise_scale"] for r in grow][2] == pytest.approx(0.1 / 0.1 * (1024 / 256 - 1))


def test_huge_lr_diverges_as_data():
    reports = run(trial(lr=[1e4], workload={"ghost_batch_size": None}))
    assert reports[-1]["diverged"] == 1
    assert len(reports) < 4  # stopped early


@pytest.mark.parametrize("workload", [{}, {"precise_bn": {"batches": 2}}], ids=["ema_bn", "precise_bn"])
def test_checkpoint_resume_is_exact(workload):
    config = trial(schedule={"kind": "increase_batch", "milestones": [2], "factor": 2}, workload=workload)
    straight = run(config)
    first = EpochLoop(config, Distributed(device=DEVICE))
    iterator = first.run()
    next(iterator), next(iterator)
    state = first.state_dict()
    resumed = EpochLoop(config, Distributed(device=DEVICE))
    resumed.load_state_dict(state)
    rest = [r.metrics() for r in resumed.run()]
    assert [r["epoch"] for r in rest] == [3, 4]
    assert len(resumed.history) == 4
    for a, b in zip(straight[2:], rest):
        for key in ("test_loss", "test_acc", "train_loss", "updates", "batch_size"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key


def test_warmup_sets_lr_every_update_and_reports_the_epoch_mean():
    """Two warmup epochs of 16 updates: U = 32, update u trains with 0.1·(u+1)/33."""
    loop = EpochLoop(trial(schedule={"kind": "constant", "warmup_epochs": 2}), Distributed(device=DEVICE))
    reports = []
    for report in loop.run():
        reports.append(report.metrics())
        if report.epoch == 1:  # the lr of the epoch's last update is still set
            assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 16 / 33)
    assert [r["lr"] for r in reports] == pytest.approx(
        [0.1 * sum(range(1, 17)) / (16 * 33), 0.1 * sum(range(17, 33)) / (16 * 33), 0.1, 0.1])
    assert reports[0]["effective_lr"] == pytest.approx(reports[0]["lr"] / (1 - 0.9))


def test_cosine_decay_sets_lr_every_update_after_the_warmup():
    """One warmup epoch then cosine over the other 3 (16 updates each): U = 16, T = 64; update u ≥ U
    trains with 0.1·½(1 + cos(π·(u − 16)/48)), the epoch reports the mean."""
    loop = EpochLoop(trial(schedule={"kind": "cosine_decay_lr", "warmup_epochs": 1}), Distributed(device=DEVICE))
    reports = [report.metrics() for report in loop.run()]
    cosine = [0.1 * (1 + math.cos(math.pi * (u - 16) / 48)) / 2 for u in range(16, 64)]
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(cosine[-1])  # the run's last update
    assert [r["lr"] for r in reports] == pytest.approx(
        [0.1 * sum(range(1, 17)) / (16 * 17)] + [sum(cosine[i:i + 16]) / 16 for i in (0, 16, 32)])


def test_stop_at_train_loss_ends_the_trial_there_as_ok_with_its_sharpness():
    """The same trajectory as without a target, cut at the first epoch whose (eval-mode) training
    loss is at or below it; the final-epoch diagnostics are measured at that epoch."""
    eval_mode = {"train_metrics": "eval"}
    full = run(trial(epochs=5, workload=eval_mode))
    target = (full[1]["train_loss"] + full[2]["train_loss"]) / 2  # between epochs 2 and 3
    assert full[1]["train_loss"] > target >= min(r["train_loss"] for r in full[2:])  # crossed inside the run
    sharpness = {"sharpness": {"subspace_dims": None, "steps": 2, "examples": 256}}
    config = trial(epochs=5, workload={**eval_mode, "stop_at_train_loss": target}, diagnostics=sharpness)
    stopped = run(config)
    first = next(i for i, r in enumerate(full) if r["train_loss"] <= target)
    assert len(stopped) == first + 1 < len(full)
    assert [r["train_loss"] for r in stopped] == [r["train_loss"] for r in full[:first + 1]]
    assert "sharpness" in stopped[-1] and not any("sharpness" in r for r in stopped[:-1])
    assert trial_status(config.workload, stopped[-1]) == "ok"
    assert trial_status(config.workload, stopped[0]) == "stopped"  # ended by a scheduler before its target


TARGET = {"target_accuracy": 0.7}  # lr 0.02: test_acc 0.30 at init, 0.63 and 0.71 after epochs 1 and 2


def test_steps_to_target_interpolates_between_evaluations_and_reads_b_simple_there():
    """Epoch ends only: the crossing between the evaluations around it (scalestudy.train.crossing,
    checked against closed forms in test_target), refined once the evaluation after it is in; the
    gradient noise scale is read at the end of the crossing's epoch."""
    config = trial(lr=[0.02], diagnostics={**TARGET, "gradient_noise_scale": True})
    initial = EpochLoop(config, Distributed(device=DEVICE))
    points = [Evaluation(0, 0, initial.evaluate(initial.data.test_x, initial.data.test_y)[1])]
    reports = run(config)
    points += [Evaluation(r["updates"], r["examples_seen"], r["test_acc"]) for r in reports]
    hit = next(i for i, p in enumerate(points) if p.value >= 0.7)
    assert 1 < hit < len(points) - 1  # crossed after the first epoch, inside the run: the test means something
    expected = crossing(points[:hit], points[hit], 0.7, points[hit + 1])
    assert not expected.censored and points[hit - 1].updates < expected.updates <= points[hit].updates
    assert [("updates_to_target" in r) for r in reports] == [i + 1 >= hit for i in range(len(reports))]
    assert reports[-1]["updates_to_target"] == pytest.approx(expected.updates)
    assert reports[-1]["examples_to_target"] == pytest.approx(expected.updates * 64)
    assert reports[-1]["gradient_noise_scale_at_target"] == reports[hit - 1]["gradient_noise_scale"] > 0


def test_steps_to_target_every_k_updates_is_consistent_and_changes_no_training():
    """Evaluating every K updates is eval mode without randomness: the curves are identical. K = 1
    gives the first update at the target exactly (evaluations one update apart); coarser K
    interpolate near it."""
    plain = run(trial(lr=[0.02], diagnostics=TARGET))
    found = {}
    for every in (1, 8, 16):
        reports = run(trial(lr=[0.02], diagnostics={**TARGET, "target_eval_every": every}))
        for a, b in zip(plain, reports):
            for key in ("test_acc", "test_loss", "running_loss", "train_acc"):
                assert a[key] == b[key], key
        found[every] = reports[-1]["updates_to_target"]
    epoch_end = next(r["updates"] for r in plain if r["test_acc"] >= 0.7)
    assert found[1] == int(found[1]) and epoch_end - 16 < found[1] <= epoch_end
    assert found[8] == pytest.approx(found[1], abs=8) and found[16] == pytest.approx(found[1], abs=16)


def test_a_crossing_at_47_updates_is_resolved_in_margin_mode_and_censored_from_epoch_ends():
    """The audit's case: one epoch of 256 updates, the target crossed at about 47. Evaluated every
    update it is found exactly; in margin mode (K = 4, margin 0.1: the first epoch on the doubling
    grid 4, 8, 16, 32, then every 4 within the margin) within ±25 %; from epoch ends only it is
    censored, known only to be ≤ 256, never reported as 256."""
    base = {"batch_size": [16], "lr": [0.003], "epochs": 1,
            "workload": {"dataset_options": {"train_size": 4096, "test_size": 1024}}}
    target = {"target_accuracy": 0.61}
    exact = run(trial(**base, diagnostics={**target, "target_eval_every": 1}))[-1]["updates_to_target"]
    assert 40 <= exact <= 55  # the first update at 0.61 (47 when written)
    margin = run(trial(**base, diagnostics={**target, "target_eval_every": 4, "target_eval_margin": 0.1}))[-1]
    assert margin["updates_to_target"] == pytest.approx(exact, rel=0.25)
    ends = run(trial(**base, diagnostics=target))[-1]
    assert "updates_to_target" not in ends and ends["updates_to_target_at_most"] == ends["updates"] == 256
    assert ends["examples_to_target_at_most"] == 4096


def test_steps_to_target_resumes_with_its_evaluations():
    """The margin gate reads the last evaluation: a resumed trial must find it in the checkpoint."""
    config = trial(lr=[0.02], diagnostics={**TARGET, "target_eval_every": 1, "target_eval_margin": 0.1})
    straight = run(config)
    first = EpochLoop(config, Distributed(device=DEVICE))
    next(first.run())
    resumed = EpochLoop(config, Distributed(device=DEVICE))
    resumed.load_state_dict(first.state_dict())
    rest = [r.metrics() for r in resumed.run()]
    assert straight[1]["updates_to_target"] < straight[1]["updates"]  # found inside epoch 2
    assert rest[-1]["updates_to_target"] == straight[-1]["updates_to_target"]


def test_two_ranks_augment_their_slices_as_one_worker_augments_the_global_batch():
    """W = 2 simulated ranks (rank and world injected, no process group) against W = 1, example by example."""
    gen = torch.Generator().manual_seed(0)
    images = InMemoryDataset("images", torch.randn(96, 3, 8, 8, generator=gen), torch.randint(0, 10, (96,)),
                             torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,)), 10, (3, 8, 8),
                             augment=random_crop_flip)
    order = torch.randperm(96, generator=gen)
    for step in range(3):  # the shared generator advances identically on every rank
        whole = rank_batch(images, order, step, 32, Distributed(device=DEVICE), torch.Generator().manual_seed(7))
        halves = [rank_batch(images, order, step, 32, Distributed(rank, 2, DEVICE), torch.Generator().manual_seed(7))
                  for rank in (0, 1)]
        assert torch.equal(torch.cat([h[0] for h in halves]), whole[0])
        assert torch.equal(torch.cat([h[1] for h in halves]), whole[1])
        assert not torch.equal(whole[0], images.train_x[order[step * 32:(step + 1) * 32]])  # augmented


def _checkpoints_at(tmp_path, config, epochs_by_folder):
    """Real checkpoints (Tune's folder layout) of one loop stopped at the given epochs."""
    from ray.train import Checkpoint

    from scalestudy.run.storage import STATE_FILE

    loop = EpochLoop(config, Distributed(device=DEVICE))
    states, iterator = {}, loop.run()
    for epoch in range(1, max(epochs_by_folder.values()) + 1):
        next(iterator)
        states[epoch] = loop.state_dict()
    found = []
    for folder, epoch in epochs_by_folder.items():
        (tmp_path / folder).mkdir()
        torch.save(states[epoch], tmp_path / folder / STATE_FILE)
        found.append(Checkpoint.from_directory(str(tmp_path / folder)))
    return found


def test_restore_takes_the_checkpoint_furthest_along(tmp_path):
    """Tune may hand a resumed trial an older checkpoint than the trial persisted, and a
    restarted trial numbers its folders from 0 again: the epoch inside decides."""
    from ray.train import Checkpoint

    from scalestudy.run.trainables import drive

    config = trial()
    straight = run(config)
    checkpoints = _checkpoints_at(tmp_path, config, {"checkpoint_000005": 1, "checkpoint_000000": 2})
    (tmp_path / "checkpoint_000009").mkdir()
    (tmp_path / "checkpoint_000009" / "state.pt").write_bytes(b"cut short by a kill")
    checkpoints.append(Checkpoint.from_directory(str(tmp_path / "checkpoint_000009")))
    reports = []
    drive(EpochLoop(config, Distributed(device=DEVICE)), checkpoints, lambda m, checkpoint=None: reports.append(m),
          lambda d: None, is_writer=False)
    assert [r["epoch"] for r in reports] == [3, 4]
    assert reports[-1]["test_acc"] == pytest.approx(straight[-1]["test_acc"])
    assert [h["epoch"] for h in json.loads(reports[0]["history_json"])] == [1, 2]


def test_restored_finished_trial_only_replays_its_end(tmp_path):
    from scalestudy.run.trainables import drive

    config = trial()
    checkpoints = _checkpoints_at(tmp_path, config, {"checkpoint_000003": 4})
    reports = []
    drive(EpochLoop(config, Distributed(device=DEVICE)), checkpoints, lambda m, checkpoint=None: reports.append(m),
          lambda d: None, is_writer=False)
    # One report, nothing retrained: its history ends at its own epoch.
    assert len(reports) == 1 and reports[0]["epoch"] == 4
    assert [h["epoch"] for h in json.loads(reports[0]["history_json"])] == [1, 2, 3, 4]


def _train(config) -> tuple[list[dict], list[torch.Tensor]]:
    """Reports and the final BN running statistics of one single-process run."""
    torch.set_num_threads(1)
    loop = EpochLoop(config, Distributed(device=DEVICE))
    return [r.metrics() for r in loop.run()], [b.clone() for b in running_stat_buffers(loop.model)]


def _assert_same_training(a, b, stats_tolerance: float = 1e-5):
    (reports_a, stats_a), (reports_b, stats_b) = a, b
    for x, y in zip(reports_a, reports_b, strict=True):
        assert x["updates"] == y["updates"]
        for key in ("running_loss", "test_loss", "test_acc"):
            assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-6), key
    for x, y in zip(stats_a, stats_b, strict=True):
        torch.testing.assert_close(x, y, rtol=stats_tolerance, atol=stats_tolerance)


def test_gradient_accumulation_matches_one_big_batch():
    """With ghost BN, micro-batches of whole ghost batches give the same steps and, every ghost
    batch being folded in order, the same running statistics, hence the same evaluation."""
    whole = _train(trial(batch_size=[128]))
    split = _train(trial(batch_size=[128], workload={"max_device_batch_size": 32}))
    _assert_same_training(whole, split)


def test_noise_diagnostic_leaves_ghost_bn_training_unchanged():
    """One worker: the diagnostic splits each step in two halves of whole ghost batches, which changes
    nothing in training; B_simple is logged, positive, every epoch. When the local batch is a single
    ghost batch there is no second batch size: nothing is logged, never a one-size estimate."""
    plain = _train(trial(batch_size=[64]))
    measured = _train(trial(batch_size=[64], diagnostics={"gradient_noise_scale": True}))
    _assert_same_training(plain, measured)
    values = [r["gradient_noise_scale"] for r in measured[0]]
    assert all(math.isfinite(v) and v > 0 for v in values), values
    unsplittable = run(trial(batch_size=[16], diagnostics={"gradient_noise_scale": True}))
    assert not any("gradient_noise_scale" in r for r in unsplittable)


def test_precise_bn_recomputes_fixed_statistics_for_plain_and_ghost_bn():
    for ghost in (16, None):
        config = trial(workload={"ghost_batch_size": ghost, "precise_bn": {"batches": 3}}, epochs=2)
        assert config.workload.precise_bn.batches == 3
        loop = EpochLoop(config, Distributed(device=DEVICE))
        reports = [r.metrics() for r in loop.run()]
        assert reports[-1]["test_acc"] > 0.5
        stats = [b.clone() for b in running_stat_buffers(loop.model)]
        loop._settle_bn_statistics(64, 64)  # the same fixed batches at the same weights: same statistics
        for before, after in zip(stats, running_stat_buffers(loop.model)):
            torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-7)
        ema = _train(trial(workload={"ghost_batch_size": ghost}, epochs=2))
        assert reports[-1]["running_loss"] == pytest.approx(ema[0][-1]["running_loss"], rel=1e-6)  # training untouched
        assert not torch.allclose(stats[0], ema[1][0])  # but the statistics are not the running average
    split = _train(trial(workload={"precise_bn": {"batches": 3}, "max_device_batch_size": 32}, batch_size=[128]))
    whole = _train(trial(workload={"precise_bn": {"batches": 3}}, batch_size=[128]))
    _assert_same_training(whole, split)


def _ddp_worker(rank, world, configs, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        for config in configs:
            loop = EpochLoop(config, Distributed.from_process_group(DEVICE))
            reports = [r.metrics() for r in loop.run()]
            if rank == 0:
                out.put((reports, [b.tolist() for b in running_stat_buffers(loop.model)]))  # no shared memory
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_workers_match_one_worker():
    """W=2 with per-worker ghost batches sees exactly W=1's ghost batches: same curve, and the same
    running statistics, with gradient accumulation on the workers and the noise diagnostic on (it
    reads each rank's local gradient and changes nothing). With one ghost batch per worker (the
    local batch cannot be split) B_simple still comes from two batch sizes, B/W and B, and is > 0."""
    # One pair of processes runs the three W=2 configurations: each spawn costs seconds.
    single = _train(trial(batch_size=[64]))
    noise = {"gradient_noise_scale": True}
    precise = {"precise_bn": {"batches": 2}}
    configs = [trial(batch_size=[64], workers=2, workload={"max_device_batch_size": 16}, diagnostics=noise),
               trial(batch_size=[32], workers=2, epochs=2, diagnostics=noise),
               trial(batch_size=[64], workers=2, epochs=2, workload={"ghost_batch_size": None, **precise})]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, configs, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    double, one_ghost_each, plain = (queue.get(timeout=120) for _ in configs)
    for p in procs:
        p.join(60)
    assert [r["updates"] for r in double[0]] == [r["updates"] for r in single[0]]
    for a, b in zip(single[0], double[0]):
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=0.02)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.02)
    for a, b in zip(single[1], double[1], strict=True):  # measured apart: ≤ 4e-7 after 4 epochs of float drift
        torch.testing.assert_close(torch.tensor(b), a, rtol=1e-3, atol=1e-4)
    for reports in (double[0], one_ghost_each[0]):
        values = [r["gradient_noise_scale"] for r in reports]
        assert all(math.isfinite(v) and v > 0 for v in values), values
    # Plain BN over W=2 normalises over each worker's 32 examples: one worker with ghost batches of
    # 32 trains the same, and precise BN (averaged over the ranks) gives it the same statistics.
    ghost32 = _train(trial(batch_size=[64], epochs=2, workload={"ghost_batch_size": 32, **precise}))
    assert [r["test_acc"] for r in plain[0]] == pytest.approx([r["test_acc"] for r in ghost32[0]], abs=0.01)
    for a, b in zip(ghost32[1], plain[1], strict=True):
        torch.testing.assert_close(torch.tensor(b), a, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_ddp_geiping_block_penalty_matches_one_worker():
    """Blocks are cut from the global batch and their penalised mean is all-reduced once: W=2
    regularises the blocks W=1 does, so the running training loss follows the same curve. The
    in-epoch steps-to-target evaluations (a collective) run on both ranks at the same updates."""
    penalty = {"grad_penalty": {"kind": "geiping_blocks", "strength": 0.5, "block_size": 16}, "epochs": 2}
    target = {"target_accuracy": 0.6, "target_eval_every": 2}  # reached inside epoch 1
    single = run(trial(batch_size=[64], workload=penalty, diagnostics=target))
    config = trial(batch_size=[64], workers=2, workload=penalty, diagnostics=target)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + (os.getpid() + 7) % 1000
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, [config], port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    double, _ = queue.get(timeout=120)
    for p in procs:
        p.join(60)
    assert [r["updates"] for r in double] == [r["updates"] for r in single]
    for a, b in zip(single, double):
        assert a["running_loss"] == pytest.approx(b["running_loss"], rel=1e-4)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=0.02)
    assert 0 < double[-1]["updates_to_target"] < 16  # interpolated between evaluations 2 updates apart
    assert abs(double[-1]["updates_to_target"] - single[-1]["updates_to_target"]) <= 4
