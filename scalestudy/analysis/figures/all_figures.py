"""The study's figures as PNG files: which figures the fits allow, each built from its info object
and drawn by its own module; a note for each figure a study could have had and did not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scalestudy.analysis.figures.accuracy_vs_lr import accuracy_vs_lr, draw_accuracy_vs_lr
from scalestudy.analysis.figures.accuracy_vs_noise_scale import accuracy_vs_noise, draw_accuracy_vs_noise
from scalestudy.analysis.figures.gap_vs_batch_size import draw_gap
from scalestudy.analysis.figures.lr_opt_vs_batch_size import draw_lr_law, lr_law
from scalestudy.analysis.figures.lr_opt_vs_dataset_size import draw_lr_vs_dataset_size, lr_vs_dataset_size
from scalestudy.analysis.figures.schedule_curves import draw_schedules, schedule_curves
from scalestudy.analysis.figures.sharpness_vs_batch_size import draw_sharpness, sharpness_vs_batch
from scalestudy.analysis.figures.steps_to_target import draw_steps_to_target, steps_to_target
from scalestudy.analysis.figures.steps_vs_examples import draw_steps_vs_examples, steps_vs_examples
from scalestudy.analysis.fits.schedule_comparison import ScheduleGroup
from scalestudy.analysis.fits.study import StudyFits


def draw_fit_figures(fits: StudyFits, out_dir: Path) -> tuple[list[Path], list[str]]:
    """(figure files, notes) of every figure drawn from the fits alone."""
    frontier, law_fit, drawn, notes = fits.frontier, fits.law_fit, [], []
    if frontier.cells:
        drawn.append(draw_accuracy_vs_lr(accuracy_vs_lr(frontier, fits.objective.label),
                                         out_dir / "accuracy_vs_lr.png"))
    if frontier.usable():
        drawn.append(draw_lr_law(lr_law(frontier, law_fit), out_dir / "lr_opt_vs_batch_size.png"))
    else:
        notes.append("no ε* vs B figure: no cell has an interior optimum")
    if fits.dataset_size is None:
        by_n = lr_vs_dataset_size(frontier, law_fit)
        if by_n.series:
            drawn.append(draw_lr_vs_dataset_size(by_n, out_dir / "lr_opt_vs_dataset_size.png"))
        else:
            notes.append("no ε* vs N figure: no (B, m) has an interior optimum at two dataset sizes")
    if not fits.noise_scale_holds:
        notes.append(f"no accuracy-vs-noise-scale figure: {fits.noise.reason}")
    elif not fits.law_trials.empty:
        drawn.append(draw_accuracy_vs_noise(accuracy_vs_noise(fits.law_trials, fits.noise, fits.objective.label),
                                                  out_dir / "accuracy_vs_noise_scale.png"))
    if fits.gap.cells:
        drawn.append(draw_gap(fits.gap, out_dir / "gap_vs_batch_size.png"))
    if fits.steps.lines:
        drawn.append(draw_steps_to_target(
            steps_to_target(fits.steps, fits.critical_batch), out_dir / "steps_to_target.png"))
    elif "updates_to_target" in fits.law_trials.columns:
        notes.append(f"no steps-to-target figure: {fits.steps.reason}")
    against_examples = steps_vs_examples(fits.steps)
    if against_examples.lines:
        drawn.append(draw_steps_vs_examples(against_examples, out_dir / "steps_vs_examples.png"))
    elif fits.steps.lines:
        notes.append("no steps-vs-examples figure: no line's critical batch size could be fitted "
                     f"({fits.critical_sizes.steps_to_target.reason})")
    sharpness = sharpness_vs_batch(fits.sharpness)
    if sharpness.panels:
        drawn.append(draw_sharpness(sharpness, out_dir / "sharpness_vs_batch_size.png"))
    elif fits.sharpness.keys:
        notes.append(f"no sharpness figure: {fits.sharpness.reason}")
    return drawn, notes


def draw_schedule_curves(group: ScheduleGroup, histories: pd.DataFrame, out_dir: Path) -> Path | None:
    """Smith et al.'s Figure 2 for one schedule group, from its runs' per-epoch ``histories``
    (None when no schedule has a test-accuracy history)."""
    info = schedule_curves(group, histories)
    return draw_schedules(info, out_dir / "schedules.png") if info.curves else None
