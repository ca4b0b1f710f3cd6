"""The noisy quadratic model as a workload: spec, data, model, task, and a trial through the epoch loop."""

import math

import numpy as np
import pytest
import torch

from scalestudy.data import dataset_info, dataset_options, load_dataset
from scalestudy.models import build_model
from scalestudy.nqm import HeavyBall, Quadratic, loss_after, moments_of
from scalestudy.spec import spec_from_dict
from scalestudy.spec.base import SpecError
from scalestudy.tasks import build_task, task_info
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import expand_trials


def spec(optimizer="sgd", lr=0.1, momentum=0.9, epochs=2, **workload):
    return spec_from_dict({
        "name": "nqm", "optimizer": {"name": optimizer},
        "workload": {"model": "nqm", "dataset_options": {"dim": 8, "train_size": 256},
                     "model_options": {"noise_scale": 0.5}, "epochs": epochs, **workload},
        "grid": {"batch_size": [16], "lr": [lr], "momentum": [momentum], "seeds": [0, 1]}})


def test_model_nqm_implies_its_data_and_task_and_the_objective_is_the_exact_loss():
    study = spec()
    workload = expand_trials(study)[0].workload
    assert (workload.dataset, workload.model, workload.task) == ("nqm", "nqm", "nqm")
    assert study.objective.metric == "test_loss" and study.objective.direction == "min"
    assert task_info("nqm").objective == ("test_loss", "min")


def test_nqm_with_another_task_is_one_error_naming_the_fields():
    with pytest.raises(SpecError) as error:
        spec(task="classification")
    assert "task: classification" in str(error.value) and "nqm" in str(error.value)
    with pytest.raises(SpecError, match="dim"):
        spec(dataset_options={"dim": 0})


def test_the_draws_are_whitened_and_the_test_inputs_are_zero():
    options = dataset_options("nqm", {"dim": 5, "train_size": 400, "test_size": 3})
    assert dataset_info("nqm", options).train_size == 400
    data = load_dataset("nqm", options)
    x = data.train_x.double()
    np.testing.assert_allclose(x.mean(0).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose((x.T @ x / 400).numpy(), np.eye(5), atol=1e-5)
    assert torch.count_nonzero(data.test_x) == 0 and data.input_shape == (5,)


def test_a_batch_gradient_is_h_theta_plus_the_batch_noise():
    model = build_model("nqm", input_shape=(4,), num_classes=1,
                        options={"exponent": 2.0, "theta0_scale": 0.5, "noise_scale": 0.3})
    x = torch.randn(16, 4)
    build_task("nqm").loss(model(x), torch.zeros(16, dtype=torch.int64)).backward()
    h = torch.arange(1, 5, dtype=torch.float32) ** -2.0
    expected = h * 0.5 - 0.3 * h.sqrt() * x.mean(0)
    torch.testing.assert_close(model.theta.grad, expected)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_trial_runs_through_the_loop_and_reports_the_exact_loss(optimizer):
    torch.set_num_threads(1)
    loop = EpochLoop(expand_trials(spec(optimizer, lr=0.05))[0], Distributed(device=torch.device("cpu")))
    reports = [report.metrics() for report in loop.run()]
    assert [r["epoch"] for r in reports] == [1, 2] and not any(r["diverged"] for r in reports)
    theta = loop.model.theta.detach().double().numpy()
    exact = float(Quadratic.nqm(8).loss(theta))
    assert reports[-1]["test_loss"] == pytest.approx(exact, rel=1e-5)
    assert reports[-1]["test_loss"] < 0.5 * float(Quadratic.nqm(8).loss(np.ones(8)))
    assert math.isfinite(reports[-1]["train_loss"])


def test_a_diverging_trial_is_data():
    loop = EpochLoop(expand_trials(spec(lr=50.0, momentum=0.0, epochs=3))[0], Distributed(device=torch.device("cpu")))
    reports = [report.metrics() for report in loop.run()]
    assert reports[-1]["diverged"] == 1 and len(reports) <= 3


@pytest.mark.slow  # 40 trials through the epoch loop
def test_the_loop_averaged_over_seeds_matches_the_closed_form():
    # One epoch of N/B = 32 updates from θ₀ = 1; draws without replacement (N ≫ B) against independent draws.
    runs = []
    for seed in range(40):
        study = spec_from_dict({
            "name": "nqm", "workload": {"model": "nqm", "dataset_options": {"dim": 6, "train_size": 256, "seed": seed},
                                        "model_options": {"noise_scale": 1.0}, "epochs": 1},
            "grid": {"batch_size": [8], "lr": [0.3], "momentum": [0.5], "seeds": [seed]}})
        loop = EpochLoop(expand_trials(study)[0], Distributed(device=torch.device("cpu")))
        runs.append([report.metrics()["test_loss"] for report in loop.run()][-1])
    expected = loss_after(Quadratic.nqm(6), moments_of(np.ones(6)), HeavyBall(0.3, 0.5), 8, 32)
    runs = np.array(runs)
    assert runs.mean() == pytest.approx(expected, abs=4 * runs.std() / math.sqrt(len(runs)))
