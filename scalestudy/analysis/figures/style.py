"""The figures' one style: matplotlib (Agg backend, imported on first use so that importing the
analysis stays fast), the colours of batch sizes and momenta, plain-number log axes, the PNG writer."""

from __future__ import annotations

from pathlib import Path

LR_LABEL = "learning rate ε (per update)"
DPI = 110


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def batch_colors(batch_sizes):
    plt = pyplot()
    values = sorted(set(batch_sizes))
    cmap = plt.get_cmap("viridis")
    span = max(len(values) - 1, 1)
    return {b: cmap(0.9 * i / span) for i, b in enumerate(values)}


def plain_log_axis(ax) -> None:
    """Log x axis labelled 20, 30, 100 rather than 2×10¹."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def plain_log_y(ax) -> None:
    """Log y axis labelled 0.1, 0.2, 300, 4e+05 rather than 10⁻¹, 2×10⁻¹."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def log2_axis(ax) -> None:
    """Log base-2 x axis labelled with plain numbers (16, 32, ...), not 2^4."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def momentum_colors(momenta):
    plt = pyplot()
    momenta = sorted(set(momenta))
    cmap = plt.get_cmap("plasma")
    return {m: cmap(0.8 * i / max(len(momenta) - 1, 1)) for i, m in enumerate(momenta)}


def save_png(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)  # constrained layout: no second "tight" drawing pass
    pyplot().close(fig)
    return path
