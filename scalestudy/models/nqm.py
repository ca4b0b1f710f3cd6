"""The noisy quadratic model's parameters θ and its per-example loss (Zhang et al. 2019, §3).

L(θ) = ½ Σᵢ hᵢθᵢ², hᵢ = i^(−exponent); an example x (``scalestudy.data.nqm``: x ~ N(0, I)) has the loss
½θᵀHθ − σ·θᵀH^½x, so a batch's gradient is Hθ plus noise of covariance σ²H/B, and at x = 0 (the test
split) the loss is L(θ) exactly. The ½|x|² of the paper's ½Σhᵢ(θᵢ − σxᵢ/√hᵢ)² is left out: it changes no
gradient, and without it the training loss is an unbiased estimate of L(θ). θ starts at θ₀ = scale·(1, …, 1)
whatever the seed: the seed changes the noise only. The model returns each example's loss (the ``nqm``
task averages them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class NoisyQuadratic(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, exponent: float = 1.0,
                 theta0_scale: float = 1.0, noise_scale: float = 1.0, norm: str = "none") -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"nqm: inputs must be vectors (dim,), got shape {tuple(input_shape)}")
        dim = int(input_shape[0])
        curvatures = torch.arange(1, dim + 1, dtype=torch.float64) ** -float(exponent)
        self.register_buffer("curvatures", curvatures.float())
        self.register_buffer("noise_factor", (noise_scale * curvatures.sqrt()).float())  # σ·√hᵢ
        self.theta = nn.Parameter(torch.full((dim,), float(theta0_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example losses (n,): ½θᵀHθ − σ·θᵀH^½x."""
        quadratic = 0.5 * torch.sum(self.curvatures * self.theta**2)
        return quadratic - x @ (self.noise_factor * self.theta)
