"""``python -m scalestudy.reproductions``: run the papers' small variants and print their numbers.

Runs every spec in ``search_spaces/small/`` (unless ``--no-run``), analyzes each, and
prints, per paper, the figures that ``search_spaces/REPRODUCTIONS.md`` sets next to the
paper's claim. Everything is read back from the MLflow store (``--tracking-uri``), so the
printed numbers are exactly what the runs logged.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from scalestudy.endpoints.uris import DEFAULT_TRACKING_URI

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "search_spaces" / "small"


def _runs(client, experiment: str):
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], "tags.`scalestudy.role` = 'trial'", max_results=10000)


def _mean(values) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _group(runs, key):
    groups = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)
    return dict(sorted(groups.items()))


def passes_per_example(run) -> int:
    """Forward/backward passes of each example an update takes: 1, or 2 with a gradient penalty
    (both kinds get H·g from a forward difference, a second pass at perturbed weights; see
    ``GradientStep`` in scalestudy/train/step.py)."""
    return 2 if run.data.params.get("grad_penalty") else 1


def report(client) -> str:
    lines = []
    metric = lambda r, k: r.data.metrics.get(k, float("nan"))  # noqa: E731

    runs = _runs(client, "smith2018_schedules_small")
    if runs:
        lines.append("## smith2018_schedules_small (Smith et al. 2018, Figs. 2-3)")
        base = None
        for schedule, members in _group(runs, lambda r: r.data.params["schedule"]).items():
            updates = statistics.mean(metric(r, "updates") for r in members)
            base = updates if schedule == "step_decay_lr" else base
            lines.append(f"- {schedule}: test_acc {_mean(metric(r, 'test_acc') for r in members)}, "
                         f"updates {updates:.0f}")
        if base:
            for schedule, members in _group(runs, lambda r: r.data.params["schedule"]).items():
                ratio = statistics.mean(metric(r, "updates") for r in members) / base
                lines.append(f"  - update ratio {schedule} / step_decay_lr = {ratio:.3f}")

    runs = _runs(client, "smith2018_scaling_small")
    if runs:
        lines.append("## smith2018_scaling_small (Smith et al. 2018, Figs. 4-5)")
        for section, members in _group(runs, lambda r: r.data.params["section"]).items():
            for run in sorted(members, key=lambda r: int(r.data.params["batch_size"])):
                lines.append(f"- {section} B0={run.data.params['batch_size']} eps0={float(run.data.params['lr']):.3g} "
                             f"m={run.data.params['momentum']}: test_acc {metric(run, 'test_acc'):.4f}, "
                             f"updates {metric(run, 'updates'):.0f}")

    runs = _runs(client, "masters2018_small")
    if runs:
        lines.append("## masters2018_small (Masters & Luschi 2018)")
        for section, members in _group(runs, lambda r: r.data.params["section"]).items():
            best = {}
            for batch, cell in _group(members, lambda r: int(r.data.params["batch_size"])).items():
                finished = [r for r in cell if not metric(r, "diverged")]
                top = max(finished, key=lambda r: metric(r, "test_acc"), default=None)
                stable = len(finished)
                bn_batch = cell[0].data.params.get("bn_batch_size")  # G (ghost), B/W (plain), empty: no BN
                bn = f"BN over {bn_batch}" if bn_batch else "no BN"
                best[batch] = (f"{metric(top, 'test_acc'):.3f}" if top else "-", stable, len(cell), bn)
            lines.append(f"- {section}: best test_acc by B " + ", ".join(
                f"B={b}: {acc} ({ok}/{n} ε stable; {bn})" for b, (acc, ok, n, bn) in best.items()))

    runs = _runs(client, "keskar2017_small")
    if runs:
        lines.append("## keskar2017_small (Keskar et al. 2017)")
        groups = {**{f"B={b}": m for b, m in _group(runs, lambda r: int(r.data.params["batch_size"])).items()},
                  **{f"  B={b} lr={lr:g}": m for (b, lr), m in
                     _group(runs, lambda r: (int(r.data.params["batch_size"]), float(r.data.params["lr"]))).items()}}
        for label, members in sorted(groups.items(), key=lambda item: int(item[0].split()[0][2:])):
            lines.append(f"- {label} ({len(members)} runs): epochs {_mean(metric(r, 'epoch') for r in members)}, "
                         f"train_loss {_mean(metric(r, 'train_loss') for r in members)}, "
                         f"train_acc {_mean(metric(r, 'train_acc') for r in members)}, "
                         f"test_acc {_mean(metric(r, 'test_acc') for r in members)}, "
                         f"gap {_mean(metric(r, 'gen_gap') for r in members)}, "
                         f"sharpness {_mean(metric(r, 'sharpness') for r in members)}, "
                         f"subspace sharpness {_mean(metric(r, 'sharpness_subspace') for r in members)}")

    runs = _runs(client, "geiping2021_small")
    if runs:
        lines.append("## geiping2021_small (Geiping et al. 2021)")
        for section, members in _group(runs, lambda r: r.data.params["section"]).items():
            gradients = statistics.mean(metric(r, "examples_seen") * passes_per_example(r) for r in members)
            size = int(members[0].data.params["dataset_size"])
            lines.append(f"- {section}: test_acc {_mean(metric(r, 'test_acc') for r in members)}, "
                         f"train_acc {_mean(metric(r, 'train_acc') for r in members)}, "
                         f"epochs {statistics.mean(metric(r, 'epoch') for r in members):.0f}, "
                         f"updates {statistics.mean(metric(r, 'updates') for r in members):.0f}, "
                         f"example-gradients {gradients:.0f} = {gradients / size:g} x N")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scalestudy.reproductions", description=__doc__)
    parser.add_argument("--no-run", action="store_true", help="only read an existing store")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    parser.add_argument("--only", nargs="*", help="spec names in search_spaces/small/ (default: all)")
    args = parser.parse_args(argv)
    from mlflow.tracking import MlflowClient

    if not args.no_run:
        for spec in sorted(SMALL.glob("*.yaml")):
            if args.only and spec.stem not in args.only:
                continue
            command = [sys.executable, "-m", "scalestudy.cli", "run", str(spec), "--quiet",
                       "--tracking-uri", args.tracking_uri]
            print("$", " ".join(command[2:]), flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(report(MlflowClient(args.tracking_uri)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
