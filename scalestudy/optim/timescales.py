"""The timescales of AdamW's other hyperparameters, and their conversions: the one home for each.

Units: B and N in examples, ε per update, λ per update per unit of ε (torch's ``weight_decay``),
half-lives in examples, τ_epoch in epochs. Every function takes floats or numpy arrays (the trial
table converts whole columns); a λ of 0 or a missing β2 gives NaN, never a division error.

* **Weight decay** (Wang & Aitchison, ICML 2025, Sec. 3): AdamW's update
  w_t = (1 − ηλ)·w_{t−1} − η·u_t is an EMA of the updates −u_t/λ with timescale
  τ_iter = 1/(ηλ) updates; in epochs, with N/B updates per epoch, τ_epoch = τ_iter·B/N =
  B/(η·λ·N). Holding τ_epoch fixed gives λ = B/(η·N·τ_epoch). (For SGD's coupled decay the per-update
  shrink is the same ηλ at m = 0; with momentum its steady state is ηλ/(1−m): τ_epoch is then the
  timescale without that factor.)
* **β2** (Marek et al. 2025, arXiv 2507.07101, Sec. 3): the second moment's half-life in examples,
  h = B·ln(½)/ln(β2), held fixed across B: β2 = ½^(B/h) (their tokens are our examples).
* **A model EMA** (Busbridge et al. 2023, "How to Scale Your EMA", Definition 1.2): when B grows by
  κ, ρ becomes ρ^κ. The half-life form ρ = ½^(B/h) is that rule: ½^(κB/h) = (½^(B/h))^κ.
"""

from __future__ import annotations

import numpy as np

# The forward rules' one home is the law package (standard library: recommend and plan use them too);
# their arithmetic works on numpy arrays as well.
from scalestudy.law.adamw_rules import decay_for_half_life, weight_decay_for_tau_epoch

__all__ = ["decay_for_half_life", "half_life_examples", "tau_epoch", "weight_decay_for_tau_epoch"]


def tau_epoch(weight_decay, batch_size, lr, dataset_size):
    """τ_epoch = B/(ε·λ·N) epochs; NaN where λ is 0 (no decay: no timescale) or missing."""
    decay = np.asarray(weight_decay, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.divide(np.asarray(batch_size, float), np.asarray(lr, float) * decay * np.asarray(dataset_size, float))
    tau = np.where(decay > 0, tau, np.nan)
    return float(tau) if tau.ndim == 0 else tau


def half_life_examples(decay, batch_size):
    """h = B·ln(½)/ln(ρ) examples: the half-life of a per-update decay ρ at batch B; NaN where ρ is
    missing, 0 where ρ = 0 (no memory)."""
    rho = np.asarray(decay, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.asarray(batch_size, float) * np.log(0.5) / np.log(rho)
    half = np.where(rho == 0, 0.0, half)
    return float(half) if half.ndim == 0 else half
