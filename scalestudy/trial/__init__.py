"""One trial of a study, as every layer sees it.

* :mod:`scalestudy.trial.config`: the trial's config (:class:`~scalestudy.trial.config.TrialConfig`),
  built once from the spec and carried unchanged to the epoch loop;
* :mod:`scalestudy.trial.record`: what the trial is called and what it leaves in MLflow (tag,
  param and metric names, the trial key, the run name, the status rule);
* :mod:`scalestudy.trial.readback`: that record (an MLflow run, or a config and its last Ray result)
  read back as a row of the trial table;
* :mod:`scalestudy.trial.curve_bound`: what a trial stopped early could still have reached (the bound
  the search stops it by and the analysis censors it by).

Imports nothing itself: the analysis reads the record's names without the config's dependencies.
"""
