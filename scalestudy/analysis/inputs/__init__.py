"""The analysis' way in, its only I/O: a study's trials as one validated trial table.

* :mod:`.trial_table`: the table's schema, :class:`~.trial_table.TrialTable`, Parquet in and out;
* :mod:`.mlflow_runs`: an MLflow experiment's trial runs read into that table (one search, or one SQL
  query per table of MLflow's schema);
* :mod:`.metric_histories`: per-epoch points of chosen runs; :mod:`.stop_bounds` reads them for the
  bound of each trial stopped early by it (``objective_bound``), :mod:`.trial_histories` for the
  cells' runs over seeds.
"""
