"""A batch-size warmup derived from CBS(t) (``batch_warmup.json``, schema ``scalestudy.batch_warmup/v1``):
training starts at the base run's B_0 and multiplies B by an integer ``factor`` whenever the
critical batch size measured at a checkpoint allows it (Merrill et al. 2025, arXiv 2505.23971, §5:
"batch size warmup"), with the lr rescaled by the study's rule.

    warmup = warmup_from_cbs(CBSCurve.load("cbs.json"), max_batch_size=1024)
    warmup.at_examples(50_000)           # BatchStage(start_examples=..., batch_size=..., lr=...)
    warmup.at_step(120)

The rule (:func:`scaled_lr`, the one home of it; a branch's lr comes from it too): linear,
ε·B/B_0, for SGD (Goyal et al. 2017; Smith et al. 2018: decaying ε by f ≈ B × f); sqrt,
ε·√(B/B_0), for Adam-type optimizers (Malladi et al. 2022; Seesaw, arXiv 2510.14717: lr ÷ √2
with B × 2); law, ε·(B/B_0)^α with α the exponent of a fitted law (``law.json``'s alpha:
``ScalingLaw.predict(B)/predict(B_0)`` at one momentum and N is exactly that ratio), carried as
``rule_exponent``. A stage starts at a checkpoint where the bound (the lower end of CBS's 95 % interval
by default: a conservative warmup) first admits the next multiple; B never decreases, and a stage
with no whole update left before the run's end is not begun.

It starts at the first update boundary at or after its checkpoint where the examples seen are
a whole multiple of its own B: OLMo-core's data loader changes B only there (it neither repeats nor
skips data), and Hugging Face's Trainer groups micro-batches into updates by counting from its
epoch's start (:mod:`scalestudy.law.warmup_hf`), so every trainer switches at the same example.
The exports: :mod:`~scalestudy.law.warmup_pytorch`, :mod:`~scalestudy.law.warmup_hf`,
:mod:`~scalestudy.law.warmup_megatron`, :mod:`~scalestudy.law.warmup_olmo`,
:mod:`~scalestudy.law.warmup_levanter`.

Standard library only.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalestudy.law.cbs import EXPONENT_RULES, RULES, CBSCurve, CBSPoint, rule_exponent_problem
from scalestudy.law.records import LawError, LawFileError, read_document, read_record, to_json, write_document

WARMUP_SCHEMA = "scalestudy.batch_warmup/v1"
MAX_WARMUP_BYTES = 16 * 2**20
BASES = ("ci_low", "estimate")  # what a stage's B must not exceed: CBS's lower 95 % bound, or CBS itself


def scaled_lr(base_lr: float, base_batch_size: float, batch_size: float, rule: str,
              exponent: float | None = None) -> float:
    """The lr at ``batch_size`` from (B_0, ε_0): ε_0·(B/B_0) (``linear``), ε_0·√(B/B_0) (``sqrt``) or
    ε_0·(B/B_0)^exponent (``law``: ``exponent`` the law's alpha, required; the others take none)."""
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}; allowed: {', '.join(RULES)}")
    problem = rule_exponent_problem(rule, exponent)
    if problem:
        raise ValueError(problem)
    ratio = batch_size / base_batch_size
    if rule in EXPONENT_RULES:
        return base_lr * ratio ** exponent
    return base_lr * (ratio if rule == "linear" else math.sqrt(ratio))


@dataclass(frozen=True)
class BatchStage:
    """From ``start_examples`` (the ``start_step``-th update) on, train at ``batch_size`` with ``lr``."""

    start_examples: int
    start_step: int
    batch_size: int  # global [examples per update]
    lr: float


@dataclass(frozen=True)
class BatchWarmup:
    """The content of ``batch_warmup.json`` (see the module docstring)."""

    schema: str
    base_batch_size: int
    base_lr: float
    momentum: float
    optimizer: str
    rule: str
    factor: int  # B grows by whole multiples of this
    basis: str  # ci_low | estimate
    total_examples: int  # the run's length [examples]
    dataset_size: int
    stages: tuple[BatchStage, ...]
    source: str | None = None  # the cbs.json it came from
    rule_exponent: float | None = None  # α of the ``law`` rule (absent in older files and for linear, sqrt)

    def check(self, where: str = "batch warmup file") -> None:
        if self.schema != WARMUP_SCHEMA:
            raise LawFileError(f"{where}: schema {self.schema!r}; this version reads {WARMUP_SCHEMA!r}")
        if self.rule not in RULES:
            raise LawFileError(f"{where}: rule {self.rule!r}; allowed: {', '.join(RULES)}")
        exponent_problem = rule_exponent_problem(self.rule, self.rule_exponent)
        if exponent_problem:
            raise LawFileError(f"{where}: {exponent_problem}")
        if self.base_batch_size < 1 or self.dataset_size < 1:
            raise LawFileError(f"{where}: base_batch_size and dataset_size must be ≥ 1")
        if not self.stages or self.stages[0].start_examples != 0 or self.stages[0].batch_size != self.base_batch_size:
            raise LawFileError(f"{where}: stages must start at examples 0 with the base batch size")
        for before, after in zip(self.stages, self.stages[1:]):
            if after.start_examples <= before.start_examples or after.batch_size <= before.batch_size:
                raise LawFileError(f"{where}: stages must grow in start_examples and batch_size")
            if after.batch_size % before.batch_size:
                raise LawFileError(f"{where}: batch size {after.batch_size} is not a whole multiple of "
                                   f"{before.batch_size}")
            if after.start_examples % after.batch_size:
                raise LawFileError(f"{where}: the stage of batch size {after.batch_size} starts at examples "
                                   f"{after.start_examples}, not a whole multiple of it")
            steps = (after.start_examples - before.start_examples) // before.batch_size
            if after.start_step != before.start_step + steps:
                raise LawFileError(f"{where}: the stage at examples {after.start_examples} starts at step "
                                   f"{after.start_step}; {steps} updates of {before.batch_size} after step "
                                   f"{before.start_step} make it {before.start_step + steps}")
        if self.total_examples < self.stages[-1].start_examples + self.stages[-1].batch_size:
            raise LawFileError(f"{where}: total_examples {self.total_examples} ends before the last stage's "
                               "first update")

    @property
    def total_steps(self) -> int:
        last = self.stages[-1]
        return last.start_step + max(0, self.total_examples - last.start_examples) // last.batch_size

    def at_examples(self, examples: int) -> BatchStage:
        return self.stages[bisect_right([s.start_examples for s in self.stages], examples) - 1]

    def at_step(self, step: int) -> BatchStage:
        return self.stages[bisect_right([s.start_step for s in self.stages], step) - 1]

    def examples_before(self, step: int) -> int:
        """The examples the updates before ``step`` take (``examples_before(total_steps)``: the whole run's)."""
        stage = self.at_step(step)
        return stage.start_examples + (step - stage.start_step) * stage.batch_size

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)

    def save(self, path: str | Path) -> Path:
        self.check()
        return write_document(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "batch warmup file") -> BatchWarmup:
        warmup = read_record(cls, data, where)
        warmup.check(where)
        return warmup

    @classmethod
    def load(cls, path: str | Path) -> BatchWarmup:
        data = read_document(path, "batch warmup file", MAX_WARMUP_BYTES, "a batch_warmup.json from scalestudy plan")
        return cls.from_dict(data, f"batch warmup file {path}")


def warmup_from_cbs(curve: CBSCurve, *, max_batch_size: int | None = None, factor: int = 2,
                    basis: str = "ci_low", total_examples: int | None = None,
                    source: str | None = None) -> BatchWarmup:
    """The step-wise warmup CBS(t) admits: at each checkpoint, the largest B_0·factor^j ≤ the bound
    (and ≤ ``max_batch_size``), never below the stage before. A censored point counts at its
    tested edge (``above``: the largest tested B; ``below``: B_0); a point without an estimate
    changes nothing, nor does one without an interval under ``ci_low`` (it has no lower bound).
    Bad arguments or a curve it cannot grow from raise :class:`LawError` (a ``ValueError``)."""
    base = curve.base_batch_size
    where = source or "the cbs curve"
    if base < 1 or curve.dataset_size < 1 or not curve.base_lr > 0:
        raise LawError(f"{where}: base_batch_size {base}, dataset_size {curve.dataset_size} and base_lr "
                       f"{curve.base_lr} must be positive")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise LawError(f"factor {factor}: must be a whole number ≥ 2")
    if basis not in BASES:
        raise LawError(f"basis {basis!r}; allowed: {', '.join(BASES)}")
    if max_batch_size is not None and max_batch_size < base:
        raise LawError(f"max_batch_size {max_batch_size}: must be ≥ the base batch size {base}")
    total = curve.total_examples if total_examples is None else total_examples
    if total < base:
        raise LawError(f"total_examples {total}: must hold at least one update of the base batch size {base}")
    stages = [BatchStage(0, 0, base, curve.base_lr)]
    for point in curve.points:
        size = stages[-1].batch_size
        while size * factor <= _bound(point, basis, base, max_batch_size):
            size *= factor
        last = stages[-1]
        # The first boundary of the last stage's updates at or after the checkpoint, one update at least,
        # where the examples seen are a whole multiple of the new B (see the module docstring).
        start = max(point.examples, last.start_examples + last.batch_size)
        start = -(-start // size) * size
        if size > last.batch_size and start + size <= total:  # one whole update of the new B at least
            stages.append(BatchStage(start, last.start_step + (start - last.start_examples) // last.batch_size,
                                     size, scaled_lr(curve.base_lr, base, size, curve.rule, curve.rule_exponent)))
    warmup = BatchWarmup(WARMUP_SCHEMA, base, curve.base_lr, curve.momentum, curve.optimizer, curve.rule, factor,
                         basis, total, curve.dataset_size, tuple(stages), source, curve.rule_exponent)
    warmup.check()
    return warmup


def _bound(point: CBSPoint, basis: str, base: int, max_batch_size: int | None) -> float:
    """The largest B a checkpoint admits [examples per update] (0: it admits no growth)."""
    if point.censored == "above":
        bound = float(max(point.tested_batch_sizes, default=base))
    elif point.censored == "below":
        bound = float(base)
    elif point.cbs is None or (basis == "ci_low" and point.ci95 is None):
        bound = 0.0
    else:
        bound = point.ci95.low if basis == "ci_low" else point.cbs
    return bound if max_batch_size is None else min(bound, max_batch_size)
