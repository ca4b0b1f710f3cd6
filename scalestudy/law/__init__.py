"""The fitted law and what is made from it, standard library only (the law file is read where
neither the analysis nor numpy is installed).

- :mod:`scaling`: ``law.json`` / ``law.yaml`` as :class:`ScalingLaw` (typed records from
  :mod:`scalestudy.law.fields`, strict reader, ``predict``);
- :mod:`transition`: steps to a target against batch size, S(B) = S_min·(1 + B_crit/B);
- :mod:`guards`: when a law is refused (no interval, an interval too wide, too far beyond the fitted
  batch sizes) and :mod:`recommendation`, what ``scalestudy recommend`` prints;
- :mod:`plan`: ``plan.yaml`` as :class:`Plan`, the per-update (B, ε, m) training code follows;
  :mod:`planner` makes one from a law (``scalestudy plan``); :mod:`pytorch` (torch needed) has
  the scheduler and batch sampler that follow it, :mod:`hf` (transformers needed) the callback
  that makes a Hugging Face Trainer follow it.
"""

from scalestudy.law.fields import (
    BEND_PREFERENCES,
    SMOOTH_FORMS,
    BatchEstimate,
    BreakdownTest,
    Compute,
    CriticalBatchCell,
    CriticalBatchSize,
    CriticalBatchSizes,
    Domain,
    FittedOn,
    GapSlope,
    Interval,
    LawCell,
    LawCovariance,
    LawError,
    LawFileError,
    LawIntervals,
    LawObjective,
    NoiseScaleAtOptimum,
    Provenance,
    Slope,
    SmoothBend,
    SmoothBendIntervals,
    StepsToTargetBatch,
    TransitionLine,
)
from scalestudy.law.guards import MAX_EXTRAPOLATION, MAX_INTERVAL_RATIO, Guard, LawRefused
from scalestudy.law.plan import PLAN_SCHEMA, Plan, PlanEpoch, PlanError, PlanStep
from scalestudy.law.planner import PlanRequest, make_plan
from scalestudy.law.scaling import (
    BREAKDOWN_OUTCOMES,
    FORM,
    FORM_N,
    MAX_BATCH_SIZE,
    PARAMETERS,
    SCHEMA,
    LogLrSpread,
    Prediction,
    PredictionError,
    ScalingLaw,
)

__all__ = ["BEND_PREFERENCES", "BREAKDOWN_OUTCOMES", "BatchEstimate", "BreakdownTest", "Compute",
           "CriticalBatchCell", "CriticalBatchSize", "CriticalBatchSizes", "Domain", "FORM", "FORM_N",
           "FittedOn", "GapSlope", "Guard", "Interval", "LawCell", "LawCovariance", "LawError",
           "LawFileError", "LawIntervals", "LawObjective", "LawRefused", "LogLrSpread", "MAX_BATCH_SIZE",
           "MAX_EXTRAPOLATION", "MAX_INTERVAL_RATIO", "NoiseScaleAtOptimum", "PARAMETERS", "PLAN_SCHEMA",
           "Plan", "PlanEpoch", "PlanError", "PlanRequest", "PlanStep", "Prediction", "PredictionError",
           "Provenance", "SCHEMA", "SMOOTH_FORMS", "ScalingLaw", "Slope", "SmoothBend",
           "SmoothBendIntervals", "StepsToTargetBatch", "TransitionLine", "make_plan"]
