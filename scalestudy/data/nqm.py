"""The noisy quadratic model's data (Zhang et al. 2019, §3): the noise of every gradient, drawn once.

An example is x ~ N(0, I) in ``dim`` dimensions; the ``nqm`` model's per-example loss is
½θᵀHθ − σ·θᵀH^½x, whose gradient Hθ − σH^½x averaged over B examples is Hθ plus noise of covariance
σ²H/B, the NQM's gradient. The draws are centred and whitened (their mean is exactly 0 and their
covariance exactly I), so that a full pass over them has gradient Hθ exactly and L's minimum stays at
θ = 0. An epoch samples them without replacement: within an epoch the batches' noise is slightly
anti-correlated (a batch's covariance is σ²H/B·(N − B)/(N − 1)), which the closed form
(``scalestudy.nqm``, independent draws) neglects; keep N ≫ B. The test split is x = 0, where the
per-example loss is L(θ) = ½θᵀHθ exactly.
"""

from __future__ import annotations

import torch

from scalestudy.data.base import InMemoryDataset
from scalestudy.data.options import NqmOptions


def load_nqm(options: NqmOptions) -> InMemoryDataset:
    generator = torch.Generator().manual_seed(options.seed)
    draws = torch.randn(options.train_size, options.dim, generator=generator, dtype=torch.float64)
    draws -= draws.mean(dim=0)
    covariance = draws.T @ draws / options.train_size
    whiten = torch.linalg.inv(torch.linalg.cholesky(covariance)).T  # x·L⁻ᵀ has covariance L⁻¹CL⁻ᵀ = I
    train_x = (draws @ whiten).float()
    return InMemoryDataset(
        name="nqm",
        train_x=train_x,
        train_y=torch.zeros(options.train_size, dtype=torch.int64),  # unused: the loss needs no target
        test_x=torch.zeros(options.test_size, options.dim),
        test_y=torch.zeros(options.test_size, dtype=torch.int64),
        num_classes=1,
        input_shape=(options.dim,),
    )
