"""The closed-form CBS at a branch point of a branched study on the noisy quadratic model (issue 23):
what the branches from a checkpoint measure, computed exactly from the base's state there.

    true_cbs(base, spec.branching, state)   # float, inf (above every tested size) or None (no closed form)

``state`` is the loop's state at the checkpoint (:meth:`scalestudy.train.loop.EpochLoop.state_dict`),
which the driver reads anyway to plan the branches. The truth (:func:`scalestudy.nqm.cbs_truth`) starts
from the realised θ and SGD's momentum buffer: torch's SGD (dampening 0) keeps buf ← m·buf + g and
steps θ ← θ − ε·buf, which is :class:`~scalestudy.nqm.HeavyBall`'s v exactly (v ← m·v + g,
θ ← θ − ε·v), so the buffer is the recurrence's v as it stands, whatever ε the branch then trains
with; no buffer yet (m = 0, or no step taken) is v = 0. The branches' window is ``window_epochs``·N examples (each branch trains
whole epochs), the tested sizes' largest bounds the search (as ``testing.branched_nqm`` does), and
the tolerance is the study's, in the units of the exact loss ``test_loss``.

Only where the closed form is the workload's: the ``nqm`` model, data and task; plain SGD (no Nesterov,
no weight decay: AdamW has no closed form); no gradient clipping or penalty; the objective ``test_loss``
(L(θ) exactly). Elsewhere there is none (None), and the branch table's ``true_cbs`` stays empty. What
it neglects: an epoch draws its batches without replacement from N whitened draws (a batch's noise is
σ²H/B·(N − B)/(N − 1), the closed form's σ²H/B; keep N ≫ B), and a B that does not divide N trains
⌊N/B⌋ updates an epoch where the closed form reads N/B between the whole counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalestudy.nqm import Branching, Quadratic, cbs_truth, moments_of
from scalestudy.spec.branching import BranchingSpec, window_epochs
from scalestudy.trial.config import TrialConfig

NQM = "nqm"
EXACT_OBJECTIVE = "test_loss"  # the nqm task's test split is x = 0: L(θ) exactly


def no_truth_reason(base: TrialConfig) -> str | None:
    """Why the base's branches have no closed-form CBS, or None when they have one."""
    workload = base.workload
    if (workload.dataset, workload.model, workload.task) != (NQM, NQM, NQM):
        return "not the noisy quadratic model"
    if base.optimizer != "sgd" or base.nesterov or base.weight_decay:
        return "the closed form is plain SGD's (no Nesterov, no weight decay)"
    if workload.grad_clip_norm is not None or workload.grad_penalty is not None:
        return "the closed form has no gradient clipping or penalty"
    if base.objective.metric != EXACT_OBJECTIVE:
        return f"the closed form is of {EXACT_OBJECTIVE}, the exact loss"
    return None


def nqm_branching(base: TrialConfig, branching: BranchingSpec) -> Branching:
    """The branches of ``base`` as :class:`scalestudy.nqm.Branching` (B₀, ε₀, m, the rule, the window)."""
    n = base.workload.dataset_size
    return Branching(base.lr, base.batch_size, base.momentum, branching.rule_for(base.optimizer),
                     window_epochs(branching, n) * n, branching.tolerance,
                     rule_exponent=branching.rule_exponent())


def checkpoint_moments(state: dict[str, Any]) -> np.ndarray:
    """(θ², θv, v²) per direction of the loop's state: θ and SGD's momentum buffer (its v; see the docstring)."""
    theta = state["model"]["theta"].detach().double().cpu().numpy()
    (param_state,) = state["optimizer"]["state"].values() or ({},)  # one parameter: θ
    buffer = param_state.get("momentum_buffer")
    velocity = None if buffer is None else buffer.detach().double().cpu().numpy()
    return moments_of(theta, velocity)


def true_cbs(base: TrialConfig, branching: BranchingSpec, state: dict[str, Any]) -> float | None:
    """The closed-form CBS from the checkpoint ``state`` (inf: every size up to the largest tested is within
    the tolerance); None where there is no closed form (:func:`no_truth_reason`)."""
    if no_truth_reason(base) is not None:
        return None
    model = base.workload.model_options
    problem = Quadratic.nqm(base.workload.dataset_options.dim, model.exponent, model.noise_scale)
    largest = base.batch_size * max(branching.batch_factors)
    return cbs_truth(problem, checkpoint_moments(state), nqm_branching(base, branching), float(largest))
