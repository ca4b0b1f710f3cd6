"""A branch trial (issue 23): a short run restored from a checkpoint of its study's base run, at
batch size factor·B_0 with the lr of the branching rule, over a window of whole epochs.

The one home of what identifies a branch and what it writes to MLflow besides its trial config:
its :class:`BranchOrigin` (which checkpoint, where the base was then), the tags and params its run
carries (the run is a child of the base's run: ``mlflow.parentRunId``), and its key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from scalestudy.trial import record
from scalestudy.trial.config import TrialConfig

BRANCH_ROLE = "branch"  # ROLE_TAG of a branch's run
# Tags of a branch's run (the analysis reads them back; params carry the same values for the UI).
CHECKPOINT_TAG = "scalestudy.branch.checkpoint"  # 0-based index of the base's checkpoint
CHECKPOINT_EPOCH_TAG = "scalestudy.branch.checkpoint_epoch"  # epochs the base had trained
CHECKPOINT_EXAMPLES_TAG = "scalestudy.branch.checkpoint_examples"
CHECKPOINT_UPDATES_TAG = "scalestudy.branch.checkpoint_updates"
FACTOR_TAG = "scalestudy.branch.batch_factor"  # B / B_0
BASE_KEY_TAG = "scalestudy.branch.base_key"  # the base trial's key
RULE_TAG = "scalestudy.branch.rule"  # linear | sqrt | law: the branch's lr from the base's (law.batch_warmup.scaled_lr)
RULE_EXPONENT_TAG = "scalestudy.branch.rule_exponent"  # α of the law rule (branching.law's alpha); law only
# The closed-form CBS at the branch's checkpoint (the noisy quadratic model with SGD only: run.branch_truth).
TRUE_CBS_TAG = "scalestudy.branch.true_cbs"
# The study's branching settings the analysis needs, carried by each branch so its run describes itself.
TOLERANCE_TAG = "scalestudy.branch.tolerance"  # in the objective's units
WINDOW_EXAMPLES_TAG = "scalestudy.branch.window_examples"  # the spec's window (trained: whole epochs)
WARMUP_BASIS_TAG = "scalestudy.branch.warmup_basis"  # ci_low | estimate (branching.warmup_basis)


@dataclass(frozen=True)
class BranchOrigin:
    """Where a branch starts: the base trial's checkpoint, and the base's counts there."""

    base_key: str
    checkpoint: int  # 0-based index among the study's checkpoints
    epoch: int  # epochs the base had trained (the loop's state is complete between epochs)
    examples: int  # examples the base had seen
    updates: int  # the base's optimizer steps
    batch_factor: int  # B / B_0 (1: the control)
    window_epochs: int
    checkpoint_path: str  # the checkpoint folder inside the study's storage filesystem
    rule: str  # linear | sqrt
    tolerance: float  # the study's branching.tolerance
    window_examples: int  # the study's branching.window_examples
    warmup_basis: str = "ci_low"  # the study's branching.warmup_basis
    rule_exponent: float | None = None  # α of the law rule (None: linear, sqrt)
    true_cbs: float | None = None  # the closed-form CBS at the checkpoint, where one exists (else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BranchOrigin:
        return cls(**raw)

    def tags(self) -> dict[str, str]:
        return {record.ROLE_TAG: BRANCH_ROLE, CHECKPOINT_TAG: str(self.checkpoint),
                CHECKPOINT_EPOCH_TAG: str(self.epoch), CHECKPOINT_EXAMPLES_TAG: str(self.examples),
                CHECKPOINT_UPDATES_TAG: str(self.updates), FACTOR_TAG: str(self.batch_factor),
                BASE_KEY_TAG: self.base_key, RULE_TAG: self.rule, TOLERANCE_TAG: repr(self.tolerance),
                WINDOW_EXAMPLES_TAG: str(self.window_examples), WARMUP_BASIS_TAG: self.warmup_basis,
                **({RULE_EXPONENT_TAG: repr(self.rule_exponent)} if self.rule_exponent is not None else {}),
                **({TRUE_CBS_TAG: repr(self.true_cbs)} if self.true_cbs is not None else {})}

    def params(self) -> dict[str, str]:
        return {"branch_checkpoint": str(self.checkpoint), "branch_checkpoint_examples": str(self.examples),
                "branch_checkpoint_updates": str(self.updates), "branch_batch_factor": str(self.batch_factor),
                "branch_window_epochs": str(self.window_epochs), "branch_rule": self.rule}


def branch_config(base: TrialConfig, origin: BranchOrigin, lr: float, seed: int) -> TrialConfig:
    """The branch's trial config: the base's, at B = factor·B_0, ``lr`` and ``seed``, ending after its
    window; keyed once from its values and its origin (two checkpoints never share a key)."""
    workload = replace(base.workload, epochs=origin.epoch + origin.window_epochs)
    unkeyed = replace(base, workload=workload, batch_size=base.batch_size * origin.batch_factor, lr=float(lr),
                      seed=seed, trial_key="")
    identity = {**unkeyed.to_dict(), "branch_of": origin.base_key, "branch_epoch": origin.epoch}
    return replace(unkeyed, trial_key=record.trial_key(identity))


def branch_run_name(config: TrialConfig, origin: BranchOrigin) -> str:
    """The branch's MLflow run name: its checkpoint, then the trial's own name."""
    return f"ckpt {origin.checkpoint} ({origin.examples} ex) {config.run_name}"
