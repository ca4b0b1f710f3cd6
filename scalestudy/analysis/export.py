"""Kept for code written before the analysis was split by stage: :func:`build_law` and
:func:`write_files` live in :mod:`scalestudy.analysis.outputs.law_file` (``build_law`` is also
``scalestudy.analysis.build_law``)."""

from scalestudy.analysis.outputs.law_file import build_law, write_files

__all__ = ["build_law", "write_files"]
