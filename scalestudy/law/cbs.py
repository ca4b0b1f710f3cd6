"""The critical batch size during training, ``cbs.json`` (schema ``scalestudy.cbs/v1``): what a
branched study measured at each checkpoint of its base run, and what ``scalestudy plan
--batch-warmup`` turns into a batch-size schedule.

    curve = CBSCurve.load("cbs.json")
    for point in curve.points:           # in order of the base run's examples
        point.examples, point.cbs, point.ci95, point.noise_scale

CBS(t) at a checkpoint (Merrill et al. 2025, arXiv 2505.23971, §3): short runs branched from
the base run's checkpoint at batch sizes B_j ≥ B_0, each over the same window of examples with
its lr from ``rule`` (linear: ε·B/B_0 for SGD; sqrt: ε·√(B/B_0) for Adam-type; law: ε·(B/B_0)^α,
α the exponent of a fitted ``law.json``, kept in ``rule_exponent``), and the control
(B_0, the base's own setting) from the same checkpoint over the same window; CBS is the largest
B whose loss at the window's end exceeds the control's by at most ``tolerance`` (interpolated in
ln B between the tested sizes). ``censored`` says when it lies outside the tested sizes:
``"above"`` (every tested B kept the loss: CBS ≥ the largest tested) or ``"below"`` (even the
second size lost more: CBS < it).

Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalestudy.law.records import Interval, LawFileError, read_document, read_record, to_json, write_document

CBS_SCHEMA = "scalestudy.cbs/v1"
MAX_CBS_BYTES = 16 * 2**20
RULES = ("linear", "sqrt", "law")  # lr of a branch at B: ε·(B/B_0), ε·√(B/B_0) or ε·(B/B_0)^α (a law's α)
EXPONENT_RULES = ("law",)  # the rules whose exponent is not fixed: the file carries it (``rule_exponent``)
CENSORED = ("above", "below")


def rule_exponent_problem(rule: str, exponent: float | None) -> str | None:
    """What is wrong with ``rule_exponent`` for ``rule`` (the ``law`` rule needs a finite one, the others
    none), or None."""
    if rule in EXPONENT_RULES:
        if exponent is None or isinstance(exponent, bool) or not math.isfinite(exponent):
            return f"rule_exponent {exponent!r}: the {rule} rule needs a finite exponent (the law's alpha)"
    elif exponent is not None:
        return f"rule_exponent {exponent!r}: only the {', '.join(EXPONENT_RULES)} rule has one (rule {rule})"
    return None


def rule_label(rule: str, exponent: float | None) -> str:
    """The rule as people read it: ``linear``, ``sqrt``, ``law (α = 0.62)``."""
    return f"{rule} (α = {exponent:.3g})" if rule in EXPONENT_RULES and exponent is not None else rule


@dataclass(frozen=True)
class CBSPoint:
    """CBS at one checkpoint of the base run."""

    checkpoint: int  # 0-based index of the checkpoint
    examples: int  # examples the base run had seen at the checkpoint
    updates: int  # the base run's optimizer steps at the checkpoint
    base_loss: float  # the base run's objective at the checkpoint (the loss the warmup is planned against)
    cbs: float | None  # [examples per update]; None: no estimate (see ``note``)
    ci95: Interval | None = None  # 95 % interval of cbs
    censored: str | None = None  # "above" | "below" | None
    tested_batch_sizes: tuple[int, ...] = ()
    noise_scale: float | None = None  # B_simple at the checkpoint (McCandlish et al. 2018, eq. 2.8), for comparison
    noise_scale_ci95: Interval | None = None
    true_cbs: float | None = None  # known-answer workloads (the noisy quadratic model): the closed-form value
    note: str | None = None


@dataclass(frozen=True)
class CBSCurve:
    """The content of ``cbs.json`` (see the module docstring)."""

    schema: str
    base_batch_size: int  # B_0 [examples]
    base_lr: float  # ε at B_0
    momentum: float
    optimizer: str  # sgd | adamw | the user's
    rule: str  # "linear" | "sqrt" | "law"
    tolerance: float  # in the objective's units (loss)
    window_examples: int  # each branch's window
    dataset_size: int  # N, training examples per epoch
    total_examples: int  # the base run's length [examples]
    points: tuple[CBSPoint, ...]
    workload: str | None = None
    experiment: str | None = None  # the MLflow experiment the branches are in
    created: str | None = None
    rule_exponent: float | None = None  # α of the ``law`` rule (absent in older files and for linear, sqrt)

    def check(self, where: str = "cbs file") -> None:
        if self.schema != CBS_SCHEMA:
            raise LawFileError(f"{where}: schema {self.schema!r}; this version reads {CBS_SCHEMA!r}")
        if self.rule not in RULES:
            raise LawFileError(f"{where}: rule {self.rule!r}; allowed: {', '.join(RULES)}")
        exponent_problem = rule_exponent_problem(self.rule, self.rule_exponent)
        if exponent_problem:
            raise LawFileError(f"{where}: {exponent_problem}")
        for i, point in enumerate(self.points):
            if point.censored is not None and point.censored not in CENSORED:
                raise LawFileError(f"{where}: points[{i}].censored {point.censored!r}; allowed: above, below, null")
        examples = [p.examples for p in self.points]
        if examples != sorted(examples):
            raise LawFileError(f"{where}: points are not in order of examples")

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)

    def save(self, path: str | Path) -> Path:
        self.check()
        return write_document(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "cbs file") -> CBSCurve:
        curve = read_record(cls, data, where)
        curve.check(where)
        return curve

    @classmethod
    def load(cls, path: str | Path) -> CBSCurve:
        data = read_document(path, "cbs file", MAX_CBS_BYTES, "a cbs.json written by scalestudy analyze")
        return cls.from_dict(data, f"cbs file {path}")
