"""The fitted scaling law as a file: ``law.json`` / ``law.yaml``, schema ``scalestudy.law/v1``.

    lr = k * B^alpha * (1-m)^beta

lr is the learning rate per optimizer update, B the global batch size in examples, m
the momentum. The law holds on ``domain`` and below ``breakdown_batch_size``; fields
the data could not determine are null, with the reason under ``reasons``. ``breakdown_test``
says how the breakdown test came out: ``breakdown`` (then ``breakdown_batch_size`` is set),
``none`` or ``inconclusive`` (too few batch sizes or residual degrees of freedom, or a hinge
the test cannot tell from noise), with its ``reason``, ``p_value`` and candidate hinge. When beta
is null (a single momentum was studied) k includes the factor (1-m)^beta of that
momentum and predictions are only given at it. Next to the law: ``gradient_noise_scale``
(the critical batch size B_simple predicts, beside the breakdown) and ``compute`` (trials,
trial-epochs, updates, CPU and GPU hours the study used).

    law = ScalingLaw.load("law.json")
    law.predict(batch_size=1024, momentum=0.9).lr
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "scalestudy.law/v1"
MAX_LAW_BYTES = 64 * 2**20
MAX_BATCH_SIZE = 2**53  # examples; exact as a float
FORM = "lr = k * B^alpha * (1-m)^beta"
_REQUIRED = ("schema", "form", "k", "alpha", "beta", "ci95", "breakdown_batch_size", "domain",
             "dataset_size", "fitted_on", "provenance")
_OPTIONAL = ("r2", "breakdown_test", "noise_scale_opt", "gap_slope", "gradient_noise_scale", "compute", "reasons",
             "notes", "cells", "units")
BREAKDOWN_OUTCOMES = ("breakdown", "none", "inconclusive")
UNITS = {"lr": "per optimizer update", "batch_size": "examples per update",
         "noise_scale": "g = lr/(1-m)*(N/B-1), units of lr", "dataset_size": "training examples",
         "gradient_noise_scale": "B_simple = tr(Sigma)/|G|^2, examples",
         "compute": "trial_epochs in epochs, updates in optimizer steps, hours summed over trials"}


class LawError(ValueError):
    """A law that cannot be read or used; ``str(error)`` is one line."""


class LawFileError(LawError):
    """A missing or malformed law file."""


class PredictionError(LawFileError):
    """The law file cannot answer this query (a null parameter, an unfitted momentum)."""


@dataclass(frozen=True)
class Prediction:
    batch_size: int
    momentum: float
    lr: float  # per optimizer update
    noise_scale: float  # g = lr/(1-m)·(N/B − 1); NaN when N is unknown or B ≥ N
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"lr = {self.lr:.6g}   (B={self.batch_size}, m={self.momentum:g}"
        if math.isfinite(self.noise_scale):
            text += f", noise scale g = {self.noise_scale:.6g}"
        return text + ")"


@dataclass(frozen=True)
class ScalingLaw:
    k: float | None
    alpha: float | None
    beta: float | None
    ci95: dict[str, list[float] | None]
    breakdown_batch_size: float | None
    domain: dict[str, list[float] | None]
    dataset_size: int | None
    fitted_on: dict[str, Any]
    provenance: dict[str, Any]
    r2: float | None = None
    breakdown_test: dict[str, Any] | None = None  # outcome (breakdown | none | inconclusive), reason, p_value, ...
    noise_scale_opt: dict[str, Any] | None = None
    gap_slope: dict[str, Any] | None = None
    gradient_noise_scale: dict[str, Any] | None = None  # B_crit ≈ B_simple next to the breakdown
    compute: dict[str, Any] | None = None  # trials, trial_epochs, updates, cpu_hours, gpu_hours of the study
    reasons: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))
    schema: str = SCHEMA
    form: str = FORM

    # ----------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        ordered = {key: data[key] for key in (*_REQUIRED, *_OPTIONAL)}
        return _finite(ordered)

    def save(self, path: str | Path) -> Path:
        """JSON, or YAML when the name ends in .yaml/.yml."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ScalingLaw:
        path = Path(path)
        try:
            if path.exists() and not path.is_file():
                raise LawFileError(f"cannot read law file {path}: "
                                   f"{'a directory' if path.is_dir() else 'not a regular file'}")
            if path.stat().st_size > MAX_LAW_BYTES:
                raise LawFileError(f"law file {path}: {path.stat().st_size} bytes, more than a law file holds "
                                   f"({MAX_LAW_BYTES // 2**20} MiB at most)")
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as error:
            raise LawFileError(f"cannot read law file {path}: {error.strerror or error}") from None
        except UnicodeDecodeError as error:
            raise LawFileError(f"law file {path}: not UTF-8 text (offset {error.start}); expected law.json or "
                               "law.yaml as written by scalestudy analyze") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as error:  # noqa: BLE001 - json.JSONDecodeError, yaml.YAMLError
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise LawFileError(f"law file {path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}"
                               f" ({first})") from None
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
        unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise LawFileError(f"{where}: unknown key {unknown[0]!r}")
        if data["form"] != FORM:
            raise LawFileError(f"{where}: form must be {FORM!r}, got {data['form']!r}")
        for key in ("k", "alpha", "beta", "breakdown_batch_size", "r2", "dataset_size"):
            _number(data.get(key), key, where)
        for key in ("k", "breakdown_batch_size", "dataset_size"):
            if data.get(key) is not None and data[key] <= 0:
                raise LawFileError(f"{where}: {key} must be > 0, got {data[key]!r}")
        for key in ("ci95", "domain", "fitted_on", "provenance"):
            if not isinstance(data[key], dict):
                raise LawFileError(f"{where}: {key} must be a mapping")
        for key, value in data["ci95"].items():
            _pair(value, f"ci95.{key}", where)
        for key in ("batch_size", "momentum"):
            _pair(data["domain"].get(key), f"domain.{key}", where)
        for key in ("reasons", "breakdown_test", "noise_scale_opt", "gap_slope", "gradient_noise_scale", "compute",
                    "units"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise LawFileError(f"{where}: {key} must be a mapping or null")
        _breakdown_test(data.get("breakdown_test"), data["breakdown_batch_size"], where)
        for key in ("notes", "cells"):
            if data.get(key) is not None and not isinstance(data[key], list):
                raise LawFileError(f"{where}: {key} must be a list")
        values = {key: data[key] for key in _REQUIRED if key not in ("schema", "form")}
        values.update({key: data[key] for key in _OPTIONAL if data.get(key) is not None})
        return cls(**values)

    # ------------------------------------------------------------- prediction
    def predict(self, batch_size: float, momentum: float | None = None) -> Prediction:
        """The law's lr at (B, m). ``momentum=None`` means 0, or the single fitted momentum
        when beta is null. Raises :class:`PredictionError` when the law cannot answer."""
        if not 0 < batch_size <= MAX_BATCH_SIZE:
            raise PredictionError(f"batch size must be in (0, {MAX_BATCH_SIZE}], got {batch_size}")
        fitted_m = self.domain.get("momentum")
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
        except (OverflowError, ZeroDivisionError):
            lr = math.inf
        if not (math.isfinite(lr) and lr > 0):
            raise PredictionError(f"the law gives no finite learning rate at B={batch_size:g}, m={momentum:g} "
                                  f"(k={self.k:g}, alpha={self.alpha:g}, beta={beta:g})")
        warnings = self._warnings(batch_size, momentum)
        noise = math.nan
        if self.dataset_size and batch_size < self.dataset_size:
            noise = lr / (1.0 - momentum) * (self.dataset_size / batch_size - 1.0)
        elif self.dataset_size:
            warnings.append(f"batch size {batch_size:g} is not below the dataset size {self.dataset_size}: "
                            "no noise scale")
        return Prediction(int(batch_size) if float(batch_size).is_integer() else batch_size, momentum, lr, noise,
                          warnings)

    def _warnings(self, batch_size: float, momentum: float) -> list[str]:
        warnings = []
        b_range, m_range = self.domain.get("batch_size"), self.domain.get("momentum")
        if b_range and not b_range[0] <= batch_size <= b_range[1]:
            warnings.append(f"batch size {batch_size:g} is outside the fitted range "
                            f"[{b_range[0]:g}, {b_range[1]:g}]: extrapolation")
        if m_range and not m_range[0] - 1e-9 <= momentum <= m_range[1] + 1e-9:
            warnings.append(f"momentum {momentum:g} is outside the fitted range "
                            f"[{m_range[0]:g}, {m_range[1]:g}]: extrapolation")
        test = self.breakdown_test or {}
        candidate = test.get("candidate_batch_size")
        if test.get("outcome") == "inconclusive" and candidate and batch_size > candidate:
            warnings.append(f"batch size {batch_size:g} is above B ≈ {candidate:.4g}, where the breakdown test "
                            f"was inconclusive ({test.get('reason')}): the law may not hold there")
        if self.breakdown_batch_size and batch_size > self.breakdown_batch_size:
            ci = self.ci95.get("breakdown_batch_size")
            span = f" (95% CI {ci[0]:.4g} to {ci[1]:.4g})" if ci else ""
            warnings.append(f"batch size {batch_size:g} is above the breakdown batch size "
                            f"{self.breakdown_batch_size:.4g}{span}: the law stops holding there and "
                            "this lr is likely too large")
        return warnings


def _breakdown_test(test: dict[str, Any] | None, batch_size: float | None, where: str) -> None:
    """``breakdown_test.outcome`` is one of BREAKDOWN_OUTCOMES, and "breakdown" exactly when
    ``breakdown_batch_size`` is set (files written before the field existed have no test)."""
    if test is None:
        return
    outcome = test.get("outcome")
    if outcome not in BREAKDOWN_OUTCOMES:
        raise LawFileError(f"{where}: breakdown_test.outcome must be one of {', '.join(BREAKDOWN_OUTCOMES)}, "
                           f"got {outcome!r}")
    if (outcome == "breakdown") != (batch_size is not None):
        raise LawFileError(f"{where}: breakdown_test.outcome is {outcome!r} but breakdown_batch_size is "
                           f"{batch_size!r}")
    _number(test.get("p_value"), "breakdown_test.p_value", where)


def _number(value: Any, key: str, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LawFileError(f"{where}: {key} must be a finite number or null, got {value!r}")


def _pair(value: Any, key: str, where: str) -> None:
    if value is None:
        return
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
        raise LawFileError(f"{where}: {key} must be [low, high] or null, got {value!r}")
    if value[0] > value[1]:
        raise LawFileError(f"{where}: {key} has low > high: {list(value)!r}")


def _finite(value: Any) -> Any:
    """JSON-safe copy: tuples to lists, numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
