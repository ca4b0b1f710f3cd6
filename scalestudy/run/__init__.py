"""Running a study: the driver's side, from the pre-flight to the last MLflow write.

``preflight`` → ``study`` (open, build the Tuner, collect) → ``trainables`` (the loop under Tune
and Ray Train) → ``callbacks`` (MLflow through ``tracking``, the ``progress`` display); ``storage``
is the study's folder layout and its checks; ``sync`` and ``interpolate`` read a finished study back.
"""
