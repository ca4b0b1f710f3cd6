"""The closed-form CBS at a branch point of a real NQM base run (issue 23): from the epoch loop's own
state (θ and torch SGD's momentum buffer) against ``scalestudy.nqm.cbs_truth`` on that state directly."""

import math

import numpy as np
import pytest
import torch

from scalestudy.nqm import Branching, Quadratic, cbs_truth, moments_of
from scalestudy.run.branch_truth import no_truth_reason, true_cbs
from scalestudy.spec import spec_from_dict
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.trial.config import expand_trials


def nqm_study(optimizer="sgd", tolerance=0.002, **grid):
    return spec_from_dict({
        "name": "nqm_branches", "optimizer": {"name": optimizer},
        "workload": {"model": "nqm", "dataset_options": {"dim": 8, "train_size": 256},
                     "model_options": {"noise_scale": 0.5, "exponent": 1.5}, "epochs": 3},
        "grid": {"batch_size": [16], "lr": [0.2], "momentum": [0.9], "seeds": [0], **grid},
        "branching": {"checkpoints": [256, 512], "batch_factors": [1, 2, 4, 8], "window_examples": 256,
                      "tolerance": tolerance}})


def test_the_truth_from_the_loops_state_is_cbs_truth_of_theta_and_the_momentum_buffer():
    torch.set_num_threads(1)
    study = nqm_study()
    base = expand_trials(study)[0]
    loop = EpochLoop(base, Distributed(device=torch.device("cpu")))
    assert true_cbs(base, study.branching, loop.state_dict()) == cbs_truth(  # before any step: θ₀ = 1, v = 0
        Quadratic.nqm(8, 1.5, 0.5), moments_of(np.ones(8)), Branching(0.2, 16, 0.9, "linear", 256, 0.002), 128.0)
    for _ in zip(range(2), loop.run()):
        pass
    theta = loop.model.theta.detach().double().numpy()
    buffer = loop.optimizer.state[loop.model.theta]["momentum_buffer"].double().numpy()
    assert np.abs(buffer).max() > 1e-3  # 32 updates at m = 0.9: the buffer is far from zero
    # The branches: B₀ = 16, ε₀ = 0.2 (linear rule), m = 0.9, a window of one epoch (256 examples),
    # tolerance 0.002, sizes up to 8·16 = 128; torch's buffer is HeavyBall's v as it stands.
    problem, branching = Quadratic.nqm(8, 1.5, 0.5), Branching(0.2, 16, 0.9, "linear", 256, 0.002)
    expected = cbs_truth(problem, moments_of(theta, buffer), branching, 128.0)
    truth = true_cbs(base, study.branching, loop.state_dict())
    assert truth == pytest.approx(expected, rel=1e-6) and 16 <= truth < 128
    assert truth != pytest.approx(cbs_truth(problem, moments_of(theta), branching, 128.0), rel=1e-3)  # v matters


@pytest.mark.parametrize("optimizer, grid, reason", [
    ("adamw", {}, "plain SGD"),
    ("sgd", {"nesterov": True}, "plain SGD"),
    ("sgd", {"weight_decay": [1e-4]}, "plain SGD"),
])
def test_no_truth_without_the_closed_form(optimizer, grid, reason):
    study = nqm_study(optimizer, **grid)
    base = expand_trials(study)[0]
    assert reason in no_truth_reason(base)
    state = EpochLoop(base, Distributed(device=torch.device("cpu"))).state_dict()
    assert true_cbs(base, study.branching, state) is None


def test_the_truth_is_inf_when_every_tested_size_keeps_the_loss():
    # A huge tolerance: Δ(B) ≤ it at every B up to the largest tested, 128 (cbs_truth's inf).
    study = nqm_study(tolerance=100.0)
    base = expand_trials(study)[0]
    state = EpochLoop(base, Distributed(device=torch.device("cpu"))).state_dict()
    assert math.isinf(true_cbs(base, study.branching, state))
