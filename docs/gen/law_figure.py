"""Draws ``docs/assets/lr_opt_vs_batch_size.png``, the figure on the README and the docs' front page.

It is the figure ``scalestudy analyze`` writes (``lr_opt_vs_batch_size.png``), drawn by the same
code from the shipped reference study (``scalestudy/calibration/data``: the quickstart's MLP on
mnist1d, B = 16-1024, m = 0 and 0.9, 13 lrs in √2 steps, 8 seeds). Not run at build time; rerun by
hand when the analysis changes::

    python docs/gen/law_figure.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scalestudy.analysis.figures import lr_law  # noqa: E402
from scalestudy.analysis.fit import fit_study  # noqa: E402
from scalestudy.analysis.plots import draw_lr_law  # noqa: E402
from scalestudy.calibration.reference import load_reference  # noqa: E402

OUT = ROOT / "docs" / "assets" / "lr_opt_vs_batch_size.png"

if __name__ == "__main__":
    fits = fit_study(load_reference("mnist1d_mlp"))
    draw_lr_law(lr_law(fits.frontier, fits.law_fit), OUT)
    law = fits.law_fit
    print(f"wrote {OUT.relative_to(ROOT)}: alpha={law.alpha}, beta={law.beta}")
