"""One law per (optimizer, section): a study whose sections train with different optimizers (or
differ otherwise) has one ε* law per section, not one for the largest section alone.

Each group's law is the whole per-law fit (:func:`~scalestudy.analysis.fits.study.fit_study` on the
section's trials only: ε* cells, α, β, breakdown, bend, gap, steps, and whatever else
``fit_study`` fits), so a fit added there is in every group's law too. The study-level fits (the
schedule comparison over every section, the compute) stay those of the whole table; the group
names come from :func:`scalestudy.law.groups.group_name`, as the adaptive search's law groups do.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalestudy.analysis.errors import AnalysisError
from scalestudy.analysis.fits.study import FitOptions, StudyFits, fit_study, trials_optimizer
from scalestudy.analysis.inputs.trial_table import TrialTable
from scalestudy.law.groups import group_name


@dataclass(frozen=True)
class LawGroup:
    """The law of one (optimizer, section) group of a study with several."""

    name: str  # "<optimizer>/<section>"
    optimizer: str
    section: str
    primary: bool  # the group law.json holds (the most constant-schedule trials, as before)
    fits: StudyFits | None  # None when the group's trials cannot be fitted
    reason: str | None = None  # why fits is None


def law_sections(table: TrialTable) -> list[str]:
    """The sections a law can be fitted on, most constant-schedule trials first: those whose constant-schedule
    trials span at least two batch sizes (a section of one B, a point of comparison such as a small-batch
    baseline, has no α to fit)."""
    frame = table.frame
    if "section" not in frame.columns:
        return []
    constant = frame[frame["schedule"] == "constant"] if "schedule" in frame.columns else frame
    spans = constant.groupby("section")["batch_size"].nunique()
    return [str(s) for s in constant["section"].value_counts().index if spans[s] >= 2]


def fit_law_groups(table: TrialTable, primary: StudyFits, options: FitOptions = FitOptions()) -> tuple[LawGroup, ...]:
    """One :class:`LawGroup` per section with constant-schedule trials; empty for a study of one
    (its law is ``primary``'s, as before). ``primary``: the whole table's fits, whose law is the
    primary group's."""
    sections = law_sections(table)
    if len(sections) < 2:
        return ()
    primary_sections = set(primary.law_trials["section"]) if "section" in primary.law_trials.columns else set()
    primary_sections = primary_sections or {sections[0]}  # no law trials left: the largest section, as law_trials
    groups = []
    for section in sections:
        frame = table.frame[table.frame["section"] == section].reset_index(drop=True)
        optimizer = trials_optimizer(frame)
        sub_table = TrialTable(frame, dict(table.provenance), [])
        try:
            fits, reason = fit_study(sub_table, options), None
        except AnalysisError as error:
            fits, reason = None, str(error)
        groups.append(LawGroup(group_name(optimizer, section), optimizer, section, section in primary_sections,
                               fits, reason))
    return tuple(groups)
