"""Where studies run before 0.2 find their progress state on ``--resume``.

Tune pickles the progress callback, and its :class:`StudyProgress`, with the experiment
(``tuner.pkl``), by module path; it now lives in :mod:`scalestudy.run.progress`.
"""

from scalestudy.run.progress import StudyProgress

__all__ = ["StudyProgress"]
