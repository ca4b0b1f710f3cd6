"""The fitted law and what is made from it, standard library only (the law file is read where
neither the analysis nor numpy is installed).

- :mod:`scaling`: ``law.json`` / ``law.yaml`` as :class:`ScalingLaw` (typed records, strict
  reader, ``predict``).
"""

from scalestudy.law.scaling import (
    BREAKDOWN_OUTCOMES,
    FORM,
    MAX_BATCH_SIZE,
    SCHEMA,
    BreakdownTest,
    Cell,
    Compute,
    CriticalBatchCell,
    CriticalBatchSize,
    Domain,
    FittedOn,
    GapSlope,
    Interval,
    LawError,
    LawFileError,
    LawIntervals,
    NoiseScaleAtOptimum,
    Prediction,
    PredictionError,
    Provenance,
    ScalingLaw,
    Slope,
)

__all__ = ["BREAKDOWN_OUTCOMES", "FORM", "MAX_BATCH_SIZE", "SCHEMA", "BreakdownTest", "Cell", "Compute",
           "CriticalBatchCell", "CriticalBatchSize", "Domain", "FittedOn", "GapSlope", "Interval", "LawError",
           "LawFileError", "LawIntervals", "NoiseScaleAtOptimum", "Prediction", "PredictionError", "Provenance",
           "ScalingLaw", "Slope"]
