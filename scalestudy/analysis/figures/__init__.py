"""The study's figures, one module per figure, named for the file it draws: each holds the figure's
data as a plain info object (built from the fits; tests assert on it) and its drawing (the only
matplotlib step), in the one style of :mod:`.style`.

* :mod:`.accuracy_vs_lr`, :mod:`.lr_opt_vs_batch_size`, :mod:`.lr_opt_vs_dataset_size`,
  :mod:`.accuracy_vs_noise_scale`, :mod:`.gap_vs_batch_size`: the law and what it is made of;
* :mod:`.schedule_curves`, :mod:`.steps_to_target`, :mod:`.steps_vs_examples`,
  :mod:`.sharpness_vs_batch_size`: the diagnostics;
* :mod:`.law_check`: ``check-law``'s figure;
* :mod:`.all_figures`: which figures a study's fits allow, drawn into its output folder.
"""
