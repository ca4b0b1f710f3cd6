"""Kept for code written before the analysis was split by stage: :func:`check_law` lives in
:mod:`scalestudy.analysis.fits.law_check` (also ``scalestudy.analysis.check_law``), its files in
:mod:`scalestudy.analysis.outputs.law_check_files`."""

from scalestudy.analysis.fits.law_check import CellCheck, LawCheck, check_law

__all__ = ["CellCheck", "LawCheck", "check_law"]
