"""Running a study: the driver's side, from the pre-flight to the last MLflow write.

``preflight`` (with ``continuation``: what an earlier run of the study leaves, ``spec_growth``: how a
spec may grow it) → ``study`` (open, build the Tuner, collect; ``ray_session``, ``interrupts``) →
``trainables`` (the loop under Tune and Ray Train) → ``callbacks`` (MLflow through ``tracking``, the
``progress`` display); ``study_runs`` is the study's runs in MLflow as a whole; ``storage`` is the
study's folder layout and its checks; ``sync`` and ``interpolate`` read a finished study back.
"""
