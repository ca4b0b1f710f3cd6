"""The fitted scaling law as a file: ``law.json`` / ``law.yaml``, schema ``scalestudy.law/v1``.

    lr = k * B^alpha * (1-m)^beta                 (one dataset size: gamma null, the N in dataset_size)
    lr = k * B^alpha * (1-m)^beta * N^gamma       (a study over several N: dataset_size null)

lr is the learning rate per optimizer update, B the global batch size in examples, m
the momentum, N the training examples per epoch. A law fitted at one N predicts at that N only
(``reasons.gamma`` says so); one with gamma predicts at any N, with a warning outside
``domain.dataset_size``. Files of earlier versions (no gamma, no ``critical_batch_size``, no
``prediction``) still load: every key added since is optional.

The law holds on ``domain`` and below ``breakdown_batch_size``; fields the data could not determine
are null, with the reason under ``reasons``. ``breakdown_test`` says how the breakdown test came
out: ``breakdown`` (then ``breakdown_batch_size`` is set), ``none`` or ``inconclusive`` (too few
batch sizes or residual degrees of freedom, or a hinge the test cannot tell from noise), with its
``reason``, ``p_value`` and candidate hinge. ``smooth_bend`` is the other shape a bend may take,
lr = lr_max*(1-m)^beta/(1 + B_noise/B)^alpha (McCandlish et al. 2018, alpha its small-B slope), fitted
on every usable cell, with B_noise, intervals and which shape the data prefer (absent in older
files). When beta is null (a single momentum was studied) k includes the factor (1-m)^beta of that
momentum and predictions are only given at it.
Next to the law: ``prediction`` (the parameters' covariance: 95 % intervals of ε* anywhere),
``critical_batch_size`` (three ways: steps to target, gradient noise scale, the breakdown),
``gradient_noise_scale`` (B_simple beside the breakdown) and ``compute`` (trials, trial-epochs,
updates, CPU and GPU hours the study used). Each mapping of the file is a typed record
(:mod:`scalestudy.law.fields`): ``law.ci95.alpha``, ``law.breakdown_test.outcome``.

    law = ScalingLaw.load("law.json")
    law.predict(batch_size=1024, momentum=0.9).lr

Its 300-odd lines are one record and the checks and predictions that read it: one read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalestudy.law.adamw_fields import AdamWTimescales, SurgeTest
from scalestudy.law.fields import (
    BREAKDOWN_OUTCOMES,
    PARAMETERS,
    BreakdownTest,
    Compute,
    CriticalBatchSize,
    CriticalBatchSizes,
    Domain,
    FittedOn,
    GapSlope,
    LawCell,
    LawCovariance,
    LawFileError,
    LawIntervals,
    LawObjective,
    NoiseScaleAtOptimum,
    Provenance,
    SmoothBend,
    check_breakdown_test,
    check_prediction,
    check_smooth_bend,
    read_document,
    read_record,
    to_json,
    write_document,
)
from scalestudy.noise import noise_scale

__all__ = ["BREAKDOWN_OUTCOMES", "FORM", "FORM_N", "MAX_BATCH_SIZE", "PARAMETERS", "SCHEMA", "LogLrSpread",
           "Prediction", "PredictionError", "ScalingLaw"]

SCHEMA = "scalestudy.law/v1"
MAX_LAW_BYTES = 64 * 2**20
MAX_BATCH_SIZE = 2**53  # examples; exact as a float
FORM = "lr = k * B^alpha * (1-m)^beta"
FORM_N = "lr = k * B^alpha * (1-m)^beta * N^gamma"  # the form of a law fitted over several dataset sizes
_REQUIRED = ("schema", "form", "k", "alpha", "beta", "ci95", "breakdown_batch_size", "domain",
             "dataset_size", "fitted_on", "provenance")
_OPTIONAL = ("gamma", "r2", "prediction", "breakdown_test", "smooth_bend", "noise_scale_opt", "gap_slope",
             "gradient_noise_scale", "critical_batch_size", "compute", "reasons", "notes", "cells", "units",
             "optimizer", "objective", "adamw", "surge", "group")
_POSITIVE = ("k", "breakdown_batch_size", "dataset_size")
UNITS = {"lr": "per optimizer update", "batch_size": "examples per update",
         "noise_scale": "g = lr/(1-m)*(N/B-1), units of lr", "dataset_size": "training examples",
         "gradient_noise_scale": "B_simple = tr(Sigma)/|G|^2, examples",
         "compute": "trial_epochs in epochs, updates in optimizer steps, hours summed over trials"}


class PredictionError(LawFileError):
    """The law file cannot answer this query (a null parameter, an unfitted momentum)."""


@dataclass(frozen=True)
class Prediction:
    batch_size: int
    momentum: float
    lr: float  # per optimizer update
    noise_scale: float  # g = lr/(1-m)·(N/B − 1); NaN when N is unknown or B ≥ N
    warnings: list[str] = field(default_factory=list)
    lr_ci95: tuple[float, float] | None = None  # 95 % interval of the law's ε* here (None: not in the file)
    dataset_size: int | None = None  # the N predicted at

    def describe(self) -> str:
        interval = f" [{self.lr_ci95[0]:.6g}, {self.lr_ci95[1]:.6g}]" if self.lr_ci95 else ""
        text = f"lr = {self.lr:.6g}{interval}   (B={self.batch_size}, m={self.momentum:g}"
        if self.dataset_size:
            text += f", N={self.dataset_size}"
        if math.isfinite(self.noise_scale):
            text += f", noise scale g = {self.noise_scale:.6g}"
        return text + ")"


@dataclass(frozen=True)
class LogLrSpread:
    """Uncertainty of ln ε* at one point of a law (see :meth:`ScalingLaw.log_lr_spread`)."""

    variance: float  # of the law's ln ε* there (its 95 % interval: ± t95·√variance)
    cell_scatter: float | None  # of a new cell about the law, beyond the cell's own noise
    t95: float
    dof: int  # residual degrees of freedom of the law's fit


@dataclass(frozen=True)
class ScalingLaw:
    """The content of a law file; fields in the order of :data:`_REQUIRED` and :data:`_OPTIONAL`."""

    k: float | None
    alpha: float | None
    beta: float | None
    ci95: LawIntervals
    breakdown_batch_size: float | None
    domain: Domain
    dataset_size: int | None
    fitted_on: FittedOn
    provenance: Provenance
    gamma: float | None = None  # lr ∝ N^gamma (null: fitted at one dataset size, see reasons.gamma)
    r2: float | None = None
    prediction: LawCovariance | None = None  # for intervals of ε* at a new point (absent in older files)
    breakdown_test: BreakdownTest | None = None  # absent in files written before the test existed
    smooth_bend: SmoothBend | None = None  # McCandlish's smooth bend beside the hinge (absent in older files)
    noise_scale_opt: NoiseScaleAtOptimum | None = None
    gap_slope: GapSlope | None = None
    gradient_noise_scale: CriticalBatchSize | None = None  # B_crit ≈ B_simple next to the breakdown
    critical_batch_size: CriticalBatchSizes | None = None  # B_crit three ways (absent in older files)
    compute: Compute | None = None  # trials, trial_epochs, updates, cpu_hours, gpu_hours of the study
    reasons: dict[str, str] = field(default_factory=dict)  # why a field is null: "alpha", "ci95.alpha", ...
    notes: tuple[str, ...] = ()
    cells: tuple[LawCell, ...] = ()
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))
    # The optimizer the trials trained with (null in files written before optimizers were pluggable: sgd).
    # The noise scale g is SGD's: a law of another optimizer predicts no g.
    optimizer: str | None = None
    objective: LawObjective | None = None  # what ε* is the best of (null in older files: see guards.law_objective)
    adamw: AdamWTimescales | None = None  # λ, β2 and the model EMA against B (AdamW studies; law.adamw_fields)
    surge: SurgeTest | None = None  # does ε*(B) fall past a peak B (law.adamw_fields)
    group: str | None = None  # which of a study's laws this is: "<optimizer>/<section>" (null: the study's only law)
    schema: str = SCHEMA
    form: str = FORM

    # ----------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        data = to_json(self)
        return {key: data[key] for key in (*_REQUIRED, *_OPTIONAL)}

    def save(self, path: str | Path) -> Path:
        """JSON, or YAML when the name ends in .yaml/.yml."""
        return write_document(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ScalingLaw:
        data = read_document(path, "law file", MAX_LAW_BYTES, "law.json or law.yaml as written by scalestudy analyze")
        return cls.from_dict(data, where=f"law file {path}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "law") -> ScalingLaw:
        if not isinstance(data, dict):
            raise LawFileError(f"{where}: expected a mapping, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise LawFileError(f"{where}: schema must be {SCHEMA!r}, got {data.get('schema')!r}")
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise LawFileError(f"{where}: missing key {missing[0]!r}")
        if data["form"] not in (FORM, FORM_N):
            raise LawFileError(f"{where}: form must be {FORM!r} or {FORM_N!r}, got {data['form']!r}")
        law = read_record(cls, data, where)
        if (law.form == FORM_N) != (law.gamma is not None):
            raise LawFileError(f"{where}: form {law.form!r} and gamma {law.gamma!r} disagree (gamma is set exactly "
                               f"when the form is {FORM_N!r})")
        if law.gamma is None and law.ci95.gamma is not None:
            raise LawFileError(f"{where}: ci95.gamma is set but gamma is null")
        for key in _POSITIVE:
            if getattr(law, key) is not None and getattr(law, key) <= 0:
                raise LawFileError(f"{where}: {key} must be > 0, got {getattr(law, key)!r}")
        check_breakdown_test(law.breakdown_test, law.breakdown_batch_size, where)
        check_prediction(law.prediction, where)
        check_smooth_bend(law.smooth_bend, where)
        return law

    # ------------------------------------------------------------- prediction
    def predict(self, batch_size: float, momentum: float | None = None,
                dataset_size: int | None = None) -> Prediction:
        """The law's lr at (B, m, N). ``momentum=None`` means 0, or the single fitted momentum
        when beta is null; ``dataset_size=None`` the N the law was fitted at (required when the law
        has gamma). Raises :class:`PredictionError` when the law cannot answer."""
        if not 0 < batch_size <= MAX_BATCH_SIZE:
            raise PredictionError(f"batch size must be in (0, {MAX_BATCH_SIZE}], got {batch_size}")
        n = self._dataset_size(dataset_size)
        fitted_m = self.domain.momentum
        single_m = fitted_m is not None and fitted_m[0] == fitted_m[1]
        if momentum is None:
            momentum = fitted_m[0] if self.beta is None and single_m else 0.0
        if not 0.0 <= momentum < 1.0:
            raise PredictionError(f"momentum must be in [0, 1), got {momentum}")
        for name in ("alpha", "k"):
            if getattr(self, name) is None:
                reason = self.reasons.get(name, "not fitted")
                raise PredictionError(f"the law has no {name} ({reason}): it cannot predict a learning rate")
        beta = self.beta
        if beta is None:
            if not (single_m and math.isclose(momentum, fitted_m[0], abs_tol=1e-9)):
                at = f" m={fitted_m[0]:g}" if single_m else ""
                raise PredictionError(f"the law was fitted at a single momentum{at} (beta unknown): "
                                      f"it cannot predict at m={momentum:g}")
            beta = 0.0  # k already holds (1-m)^beta of the fitted momentum
        try:
            lr = self.k * float(batch_size) ** self.alpha * (1.0 - momentum) ** beta
            if self.gamma is not None:
                lr *= float(n) ** self.gamma
        except (OverflowError, ZeroDivisionError):
            lr = math.inf
        if not (math.isfinite(lr) and lr > 0):
            raise PredictionError(f"the law gives no finite learning rate at B={batch_size:g}, m={momentum:g} "
                                  f"(k={self.k:g}, alpha={self.alpha:g}, beta={beta:g})")
        warnings = self._warnings(batch_size, momentum, n)
        noise = math.nan
        if self.optimizer not in (None, "sgd"):
            pass  # g = ε/(1−m)·(N/B − 1) is SGD's temperature; it says nothing of this optimizer
        elif n and batch_size < n:
            noise = noise_scale(lr, momentum, n, batch_size)
        elif n:
            warnings.append(f"batch size {batch_size:g} is not below the dataset size {n}: no noise scale")
        spread = self.log_lr_spread(batch_size, momentum, n)
        ci = None
        if spread is not None:
            half = spread.t95 * math.sqrt(spread.variance)
            ci = (lr * math.exp(-half), lr * math.exp(half))
        return Prediction(int(batch_size) if float(batch_size).is_integer() else batch_size, momentum, lr, noise,
                          warnings, ci, n)

    def _dataset_size(self, asked: int | None) -> int | None:
        """The N a prediction is for: the one asked, which a law of one N can only answer at that N."""
        if asked is not None and not 0 < asked <= MAX_BATCH_SIZE:
            raise PredictionError(f"dataset size must be in 1-{MAX_BATCH_SIZE}, got {asked}")
        if self.gamma is not None:
            if asked is None:
                span = self.domain.dataset_size
                fitted = f", fitted on N = {span[0]:g} to {span[1]:g}" if span else ""
                raise PredictionError(f"the law depends on the dataset size (gamma = {self.gamma:.3g}{fitted}): "
                                      "give the dataset size N to predict at (--dataset-size)")
            return asked
        if asked is not None and self.dataset_size and asked != self.dataset_size:
            raise PredictionError(f"the law was fitted at a single dataset size N={self.dataset_size} (gamma "
                                  f"unknown): it cannot predict at N={asked}; fit one over several N "
                                  "(grid.dataset_size) to scale with N")
        return asked if asked is not None else self.dataset_size

    def log_lr_spread(self, batch_size: float, momentum: float, dataset_size: int | None = None) -> LogLrSpread | None:
        """The uncertainty of ln ε* at (B, m): the variance of the law's value there (from the
        parameters' covariance), the scatter of a new cell about the law, and the t quantile;
        None for a law file without ``prediction``."""
        if self.prediction is None:
            return None
        row = {"log_k": 1.0, "alpha": math.log(batch_size), "beta": math.log1p(-momentum),
               "gamma": math.log(dataset_size) if dataset_size else math.nan}
        x = [row[name] for name in self.prediction.parameters]
        cov = self.prediction.covariance
        variance = sum(x[i] * cov[i][j] * x[j] for i in range(len(x)) for j in range(len(x)))
        return LogLrSpread(max(variance, 0.0), self.prediction.cell_scatter, self.prediction.t95, self.prediction.dof)

    def _warnings(self, batch_size: float, momentum: float, dataset_size: int | None) -> list[str]:
        warnings = []
        n_range = self.domain.dataset_size
        if self.gamma is not None and n_range and not n_range[0] <= dataset_size <= n_range[1]:
            warnings.append(f"dataset size {dataset_size} is outside the fitted range "
                            f"[{n_range[0]:g}, {n_range[1]:g}]: extrapolation")
        b_range, m_range = self.domain.batch_size, self.domain.momentum
        if b_range and not b_range[0] <= batch_size <= b_range[1]:
            warnings.append(f"batch size {batch_size:g} is outside the fitted range "
                            f"[{b_range[0]:g}, {b_range[1]:g}]: extrapolation")
        if m_range and not m_range[0] - 1e-9 <= momentum <= m_range[1] + 1e-9:
            warnings.append(f"momentum {momentum:g} is outside the fitted range "
                            f"[{m_range[0]:g}, {m_range[1]:g}]: extrapolation")
        test = self.breakdown_test
        candidate = test.candidate_batch_size if test else None
        if test and test.outcome == "inconclusive" and candidate and batch_size > candidate:
            warnings.append(f"batch size {batch_size:g} is above B ≈ {candidate:.4g}, where the breakdown test "
                            f"was inconclusive ({test.reason}): the law may not hold there")
        if self.breakdown_batch_size and batch_size > self.breakdown_batch_size:
            ci = self.ci95.breakdown_batch_size
            span = f" (95% CI {ci[0]:.4g} to {ci[1]:.4g})" if ci else ""
            warnings.append(f"batch size {batch_size:g} is above the breakdown batch size "
                            f"{self.breakdown_batch_size:.4g}{span}: the law stops holding there and "
                            "this lr is likely too large")
        return warnings
