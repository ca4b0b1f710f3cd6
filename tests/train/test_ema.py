"""The model EMA (scalestudy.train.ema) against its closed form, and in the epoch loop."""

import copy
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scalestudy.spec import spec_from_dict
from scalestudy.train.distributed import Distributed
from scalestudy.train.ema import EMAWeights
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import expand_trials


def test_constant_and_linear_updates_match_the_closed_form():
    # w_ema = ρ·w_ema + (1−ρ)·w after each step, from w_0 = 0. Constant target w_t = c (t ≥ 1):
    # w_ema,T = c·(1 − ρ^T). Linear w_t = c·t: w_ema,T = c·(T − ρ·(1 − ρ^T)/(1 − ρ)).
    rho, c, steps = 0.9, 3.0, 25
    for target, closed in ((lambda t: c, c * (1 - rho ** steps)),
                           (lambda t: c * t, c * (steps - rho * (1 - rho ** steps) / (1 - rho)))):
        model = torch.nn.Linear(1, 1, bias=False).double()
        with torch.no_grad():
            model.weight.zero_()
        ema = EMAWeights(model, rho)
        for t in range(1, steps + 1):
            with torch.no_grad():
                model.weight.fill_(target(t))
            ema.update()
        assert ema.module.weight.item() == pytest.approx(closed, rel=1e-12)
        assert model.weight.item() == target(steps)  # the trained weights are untouched


def test_batch_norm_statistics_are_averaged_and_counters_copied():
    model = torch.nn.BatchNorm1d(2)
    ema = EMAWeights(model, 0.5)
    model.train()
    model(torch.tensor([[1.0, 3.0], [3.0, 5.0]]))  # running_mean: 0.9·0 + 0.1·(2, 4)
    ema.update()
    assert ema.module.running_mean.tolist() == pytest.approx([0.1, 0.2])  # half-way from 0 to (0.2, 0.4)
    assert ema.module.num_batches_tracked.item() == 1
    state = ema.state_dict()
    fresh = EMAWeights(model, 0.5)
    fresh.load_state_dict(state)
    assert fresh.module.running_mean.tolist() == pytest.approx([0.1, 0.2])


def trial(ema, workers=1):
    spec = spec_from_dict({
        "name": "ema", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 256, "test_size": 64},
                                    "model": "mlp", "model_options": {"hidden": [32]}, "epochs": 2,
                                    "ghost_batch_size": 16},
        "grid": {"batch_size": [64], "lr": [0.1], "momentum": [0.9]}, "optimizer": {"name": "sgd", "ema": ema},
        "resources": {"workers_per_trial": workers}})
    return expand_trials(spec)[0]


def test_the_loop_reports_the_ema_weights_test_metrics_and_resumes_them():
    torch.set_num_threads(1)
    config = trial({"momentum": 0.0})  # ρ = 0: the EMA is the trained weights after every step
    report = EpochLoop(config, Distributed(device=torch.device("cpu"))).train_epoch().metrics()
    assert report["ema_test_loss"] == pytest.approx(report["test_loss"], rel=1e-6)
    assert report["ema_test_acc"] == report["test_acc"]
    config = trial({"half_life_examples": 256})  # ρ = ½^(64/256) per update
    assert config.ema_momentum == pytest.approx(0.5 ** 0.25)
    loop = EpochLoop(config, Distributed(device=torch.device("cpu")))
    first = loop.train_epoch()
    state = copy.deepcopy(loop.state_dict())  # a checkpoint: not the live tensors
    second = loop.train_epoch().metrics()
    resumed = EpochLoop(config, Distributed(device=torch.device("cpu")))
    resumed.load_state_dict(state)
    again = resumed.train_epoch().metrics()
    assert math.isfinite(first.metrics()["ema_test_loss"]) and first.metrics()["ema_test_loss"] != first.test_loss
    assert again["test_loss"] == second["test_loss"]
    assert again["ema_test_loss"] == second["ema_test_loss"] and again["ema_test_acc"] == second["ema_test_acc"]


def _ddp_worker(rank, world, config, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        loop = EpochLoop(config, Distributed.from_process_group(torch.device("cpu")))
        out.put((rank, [r.metrics() for r in loop.run()]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ddp_ranks_report_one_worker_s_ema():
    """Under DDP the EMA follows the loop's module (the same weights on every rank) and each rank's EMA of its
    BN statistics is averaged before evaluation: both ranks report the one-worker trial's EMA metrics."""
    torch.set_num_threads(1)
    ema = {"half_life_examples": 256}
    single = [r.metrics() for r in EpochLoop(trial(ema), Distributed(device=torch.device("cpu"))).run()]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + (os.getpid() + 500) % 1000
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, trial(ema, workers=2), port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    ranks = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    assert [r["ema_test_loss"] for r in ranks[0]] == [r["ema_test_loss"] for r in ranks[1]]
    for one, two in zip(single, ranks[0], strict=True):
        assert two["ema_test_loss"] == pytest.approx(one["ema_test_loss"], rel=0.02)
        assert two["ema_test_acc"] == pytest.approx(one["ema_test_acc"], abs=0.03)
