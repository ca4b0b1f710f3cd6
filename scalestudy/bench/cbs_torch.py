"""``bench cbs``'s check on the torch workload itself: branched studies trained with the ``nqm`` dataset,
model and task and torch's SGD (not the exact sampler of ``testing.branched_nqm``), their CBS(t)
estimated and compared with the closed form from the base run's real checkpoint state (θ and SGD's
momentum buffer, which is the recurrence's v).

Batches are drawn with replacement from the whitened draws (the closed form's independent draws);
the control and every branch start from a copy of the checkpoint's parameters and optimizer state,
as a branch restored from a checkpoint does.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from scalestudy.data.nqm import load_nqm
from scalestudy.data.options import NqmOptions
from scalestudy.models.nqm import NoisyQuadratic
from scalestudy.nqm import Quadratic, cbs_truth, moments_of
from scalestudy.tasks.nqm import NoisyQuadraticTask
from scalestudy.testing.branched_nqm import BranchedDesign

DRAWS = 65_536  # N ≫ B: batches drawn with replacement from this many whitened draws


def torch_branched_study(design: BranchedDesign, dim: int, noise_scale: float, seed: int) -> pd.DataFrame:
    """One base run and its branches on the torch workload (hᵢ = 1/i, C = σ²H, θ₀ = 1), as
    ``simulate_branched_study``'s rows."""
    torch.manual_seed(seed)
    data = load_nqm(NqmOptions(dim=dim, train_size=DRAWS, test_size=1, seed=seed))
    task = NoisyQuadraticTask()
    branching = design.branching
    generator = torch.Generator().manual_seed(seed)
    model = NoisyQuadratic((dim,), 1, noise_scale=noise_scale)
    optimizer = torch.optim.SGD(model.parameters(), lr=branching.base_lr, momentum=branching.momentum)

    def train(model, optimizer, batch_size: int, updates: int) -> None:
        for _ in range(updates):
            rows = torch.randint(0, DRAWS, (batch_size,), generator=generator)
            optimizer.zero_grad(set_to_none=True)
            task.loss(model(data.train_x[rows]), data.train_y[rows]).backward()
            optimizer.step()

    def exact_loss(model) -> float:
        with torch.no_grad():
            return float(model(data.test_x).mean())

    problem = Quadratic.nqm(dim, noise_scale=noise_scale)
    base, done, rows = branching.base_batch_size, 0, []
    for index, updates in enumerate(design.checkpoints):
        train(model, optimizer, base, updates - done)
        done = updates
        theta = model.theta.detach().double().numpy()
        buffer = optimizer.state[model.theta].get("momentum_buffer")
        velocity = np.zeros_like(theta) if buffer is None else buffer.detach().double().numpy()
        truth = cbs_truth(problem, moments_of(theta, velocity), branching, float(max(design.batch_sizes)))
        for size in design.batch_sizes:
            for branch_seed in range(design.seeds):
                branch = copy.deepcopy(model)
                branch_optimizer = torch.optim.SGD(branch.parameters(), lr=branching.sgd(size).lr,
                                                   momentum=branching.momentum)
                if buffer is not None:
                    branch_optimizer.state[branch.theta]["momentum_buffer"] = buffer.detach().clone()
                train(branch, branch_optimizer, size, int(branching.updates(size)))
                loss = exact_loss(branch)
                rows.append({"checkpoint": index, "checkpoint_examples": updates * base,
                             "checkpoint_updates": updates, "base_loss": exact_loss(model), "batch_size": size,
                             "seed": branch_seed, "window_loss": loss if np.isfinite(loss) else np.nan,
                             "true_cbs": truth})
    return pd.DataFrame(rows)
