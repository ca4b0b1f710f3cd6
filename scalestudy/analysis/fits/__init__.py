"""The analysis' fits: pure functions of the trial table, one module per quantity, each returning
frozen dataclasses.

* :mod:`.cell_optimum`: ε* of each (B, m[, N]) cell and its interval (the frontier);
* :mod:`.law`: the law ln ε* = ln k + α·ln B + β·ln(1 − m) [+ γ·ln N] below its breakdown;
  :mod:`.breakdown` (is there a bend?), :mod:`.hinges` (the hinge's fits), :mod:`.bend` (a smooth
  bend beside the hinge), :mod:`.null_simulation` (the null distributions of those tests);
* :mod:`.sgd_noise_scale` (g* at the optimum), :mod:`.generalization_gap`, :mod:`.schedule_comparison`,
  :mod:`.sharpness_vs_batch`, :mod:`.cost` (what the study used);
* :mod:`.steps_to_target`, :mod:`.gradient_noise_scale`, :mod:`.gradient_noise_at_target` and
  :mod:`.critical_batch` (the critical batch size three ways);
* :mod:`.branch_cbs`: CBS(t), the critical batch size at checkpoints of a branched study;
* :mod:`.study`: :func:`~.study.fit_study`, every fit of a study at once;
* :mod:`.law_check`: does a fitted law hold in a second study.
"""
