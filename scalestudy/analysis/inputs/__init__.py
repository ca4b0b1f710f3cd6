"""The analysis' way in, its only I/O: a study's trials as one validated trial table.

* :mod:`.trial_table`: the table's schema, :class:`~.trial_table.TrialTable`, Parquet in and out;
* :mod:`.mlflow_runs`: an MLflow experiment's trial runs read into that table (one search, or one SQL
  query per table of MLflow's schema).
"""
