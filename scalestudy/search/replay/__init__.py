"""Searches run without Ray, their trials answered by a function: the tabular benchmark's engine.

* :mod:`.driver`: :func:`replay` drives a SearchPlan the way Tune does;
* :mod:`.recorded`: :class:`RecordedStudy`, a recorded study's law trials cell by cell;
* :mod:`.lattice`: :func:`replay_spec`, the spec whose cells are a recorded study's;
* :mod:`.answers`: :class:`RecordedAnswers`, a trial answered by the recorded row it lands on.
"""

from scalestudy.search.replay.answers import FAR_SNAP, RecordedAnswers
from scalestudy.search.replay.driver import Evaluate, Replayed, replay, trial_rows
from scalestudy.search.replay.lattice import LatticeMatch, infer_lr_grid, lattice_match, replay_spec
from scalestudy.search.replay.recorded import EPOCHS_RUN, RecordedCell, RecordedStudy

__all__ = ["EPOCHS_RUN", "FAR_SNAP", "Evaluate", "LatticeMatch", "RecordedAnswers", "RecordedCell", "RecordedStudy",
           "Replayed", "infer_lr_grid", "lattice_match", "replay", "replay_spec", "trial_rows"]
