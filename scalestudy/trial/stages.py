"""A staged run of a branched study's comparison (issue 23, ``branching.compare``): trained from
scratch at seed s through stages of constant (B, ε), each from an epoch on (``schedules.stage_at``):

* ``constant``: the base's (B₀, ε₀) throughout — the reference;
* ``warmup``: the batch warmup derived from CBS(t) (``law.batch_warmup.warmup_from_cbs``, Merrill et
  al. 2025, §5), its stage starts at the base's epoch boundaries;
* ``late_switch``: B₀ for most of training, then the warmup's largest B from
  :data:`LATE_SWITCH_FRACTION` of the epochs on (Wang et al. 2026, arXiv 2602.14208: for hard tasks the
  optimal schedule keeps small batches and switches late; the loss then catches up fast).

The one home of a staged run's identity, tags and params.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from scalestudy.trial import record
from scalestudy.trial.config import TrialConfig

COMPARE_ROLE = "compare"  # ROLE_TAG of a staged run
KIND_TAG = "scalestudy.compare.kind"
STAGES_TAG = "scalestudy.compare.stages"  # "epoch:B:lr,..." for people; the params hold the same
KINDS = ("constant", "warmup", "late_switch")
LATE_SWITCH_FRACTION = 0.8  # of the epochs trained at B₀ before the late switch


@dataclass(frozen=True)
class Stage:
    start_epoch: int  # 0-based epoch it trains first
    batch_size: int
    lr: float


@dataclass(frozen=True)
class StagedRun:
    kind: str  # constant | warmup | late_switch
    stages: tuple[Stage, ...]  # start_epoch 0 first, increasing

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "stages": [[s.start_epoch, s.batch_size, s.lr] for s in self.stages]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StagedRun:
        return cls(raw["kind"], tuple(Stage(int(e), int(b), float(lr)) for e, b, lr in raw["stages"]))

    def described(self) -> str:
        return ",".join(f"{s.start_epoch}:{s.batch_size}:{s.lr:.6g}" for s in self.stages)

    def tags(self) -> dict[str, str]:
        return {record.ROLE_TAG: COMPARE_ROLE, KIND_TAG: self.kind, STAGES_TAG: self.described()}

    def params(self) -> dict[str, str]:
        return {"compare_kind": self.kind, "compare_stages": self.described()}

    def stage_config(self, config: TrialConfig, index: int) -> TrialConfig:
        """The loop's config for stage ``index``: its (B, ε), ending where the next stage starts (the run's key)."""
        stage = self.stages[index]
        end = self.stages[index + 1].start_epoch if index + 1 < len(self.stages) else config.workload.epochs
        return replace(config, batch_size=stage.batch_size, lr=stage.lr,
                       workload=replace(config.workload, epochs=end))


def staged_config(base: TrialConfig, run: StagedRun, seed: int) -> TrialConfig:
    """The staged run's trial config: the base's at ``seed``, keyed from its values and its stages."""
    unkeyed = replace(base, seed=seed, trial_key="")
    identity = {**unkeyed.to_dict(), "compare": run.to_dict()}
    return replace(unkeyed, trial_key=record.trial_key(identity))


def run_name(config: TrialConfig, run: StagedRun) -> str:
    sizes = "→".join(str(s.batch_size) for s in run.stages)
    return f"{run.kind} B={sizes} seed={config.seed}"
