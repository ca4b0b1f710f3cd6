"""The calibration set: trial tables of dense reference studies that were really run, shipped
with scalestudy, and the machinery that measures the estimators' coverage by subsampling them
the way users sample (2, 3 or 5 seeds, an lr grid in ×2 steps, part of the batch-size range).

Simulations that plant the estimator's own model cannot fail; these tables are real curves
(a slow left shoulder, a flat top, a cliff, seed noise that differs between cells). Each
table's spec is under ``search_spaces/reference/`` with the command that made it
(:data:`scalestudy.calibration.reference.REFERENCES`).
"""

from scalestudy.calibration.reference import REFERENCES, Reference, load_reference, reference_cells
from scalestudy.calibration.subsample import SubsampleDesign, SubsampleResult, subsample_coverage

__all__ = ["REFERENCES", "Reference", "SubsampleDesign", "SubsampleResult", "load_reference", "reference_cells",
           "subsample_coverage"]
