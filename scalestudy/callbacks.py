"""Where studies run before 0.2 find their Tune callbacks on ``--resume``.

Tune pickles a study's callbacks with its experiment (``tuner.pkl``), by module path; they now
live in :mod:`scalestudy.run.callbacks` and :mod:`scalestudy.run.progress`.
"""

from scalestudy.run.callbacks import MlflowCallback
from scalestudy.run.progress import ProgressCallback

__all__ = ["MlflowCallback", "ProgressCallback"]
