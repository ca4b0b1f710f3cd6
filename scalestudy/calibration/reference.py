"""The shipped reference tables and each cell's reference ε*.

A cell's reference ε* is the estimate from *all* its seeds on the fine grid (√2 steps): the
vertex of the seed-mean curve through its best ε and neighbours (:func:`fit_frontier`), whose
shape bias on a √2 grid is about a quarter of what it is on a ×2 grid, with 8 seeds. Only
cells whose full-data 95 % set (:mod:`scalestudy.analysis.fits.cell_optimum.mode_set`) is bounded get a reference:
elsewhere the dense study itself cannot say where the optimum is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scalestudy.analysis.fits.cell_optimum.frontier import CellOptimum, fit_frontier
from scalestudy.analysis.inputs.trial_table import load_trials_from_parquet

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Reference:
    """One shipped reference study: its table file(s), spec(s) and the commands that made them."""

    name: str
    files: tuple[str, ...]
    specs: tuple[str, ...]
    description: str

    @property
    def commands(self) -> tuple[str, ...]:
        out = []
        for spec in self.specs:
            stem = Path(spec).stem
            out.append(f"scalestudy run {spec} --quiet && scalestudy analyze --experiment reference_{stem} "
                       f"--out ref_{stem}  # then copy ref_{stem}/trials.parquet")
        return tuple(out)


REFERENCES: dict[str, Reference] = {
    "mnist1d_mlp": Reference(
        "mnist1d_mlp", ("mnist1d_mlp_m0.parquet", "mnist1d_mlp_m09.parquet"),
        ("search_spaces/reference/mnist1d_mlp_m0.yaml", "search_spaces/reference/mnist1d_mlp_m09.yaml"),
        "the quickstart's mnist1d MLP 256-256 with ghost BN 16, N = 4000, 10 epochs; B = 16-1024, m = 0 and 0.9, "
        "13 lrs in √2 steps, 8 seeds"),
    "mnist1d_cnn1d": Reference(
        "mnist1d_cnn1d", ("mnist1d_cnn1d_m09.parquet",),
        ("search_spaces/reference/mnist1d_cnn1d_m09.yaml",),
        "the mnist1d 1-D CNN (3 conv layers of 32 channels) with ghost BN 16, N = 4000, 8 epochs; B = 16-1024, "
        "m = 0.9 only, 11 lrs in √2 steps centred on the square-root rule, 8 seeds"),
    "text_lm_adamw": Reference(
        "text_lm_adamw", ("text_lm_adamw.parquet",),
        ("search_spaces/reference/text_lm_adamw.yaml",),
        "the byte-level transformer LM (width 32, one layer, 32-byte sequences of 200 kB of the standard library's "
        "sources), AdamW with β1 = 0.9, 3 epochs, objective test loss (minimised); B = 16-1024, 10 lrs in √2 "
        "steps centred on the square-root rule, 8 seeds"),
}


def available() -> list[str]:
    """The references whose tables are in the package."""
    return [name for name, ref in REFERENCES.items() if all((DATA / f).is_file() for f in ref.files)]


def load_reference(name: str) -> pd.DataFrame:
    """The reference study's constant-schedule trial table (all its files, concatenated)."""
    reference = REFERENCES[name]
    frames = [load_trials_from_parquet(DATA / f).frame for f in reference.files]
    frame = pd.concat(frames, ignore_index=True)
    if "schedule" in frame.columns:
        frame = frame[frame["schedule"] == "constant"]
    return frame.reset_index(drop=True)


def reference_cells(frame: pd.DataFrame) -> dict[tuple[int, float], CellOptimum]:
    """(B, m) → the full-data cell, for the cells whose optimum the dense study bounds."""
    cells = fit_frontier(frame).cells
    return {(c.batch_size, c.momentum): c for c in cells if c.usable and c.ci95 is not None}
