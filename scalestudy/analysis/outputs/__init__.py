"""The analysis' way out: what is made from the fits.

* :mod:`.law_file`: the fits → :class:`scalestudy.law.ScalingLaw`, law.json, law.yaml, trials.parquet;
* :mod:`.report`: report.md and the terminal summary, in phrases from :mod:`.phrases` and
  :mod:`.rule_wording`;
* :mod:`.mlflow_run`: the analysis logged back to MLflow;
* :mod:`.law_check_files`: ``check-law``'s files and terminal table.
"""
