"""``scalestudy plan --batch-warmup CBS.json``: the batch-size warmup CBS(t) admits
(:mod:`scalestudy.law.batch_warmup`), written with its files for each trainer
(:mod:`scalestudy.law.warmup_exports`) into one folder; and the line between ``plan``'s two modes,
whose flags argparse cannot tie to one of them."""

from __future__ import annotations

import argparse
from pathlib import Path

from scalestudy.cli.arguments import CliError, check_out

DEFAULT_OUT = Path("batch_warmup")
# plan --law's flags without a default, and plan --batch-warmup's: each mode refuses the other's.
LAW_REQUIRED = (("workers",), ("max_batch_per_worker",), ("examples_per_second_per_worker", "throughput"),
                ("epochs", "target"))
LAW_ONLY = ("workers", "max_batch_per_worker", "examples_per_second_per_worker", "throughput", "epochs", "target",
            "momentum", "dataset_size", "schedule", "milestones", "warmup_epochs", "group")
WARMUP_ONLY = ("max_batch_size", "basis", "total_examples", "sequence_length")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_law_plan_flags(args: argparse.Namespace) -> None:
    """``plan --law``: its required flags are there, no warmup flag is, and the shared flags get the law
    plan's defaults."""
    from scalestudy.law.planner import DEFAULT_FACTOR

    missing = [" or ".join(map(_flag, dests)) for dests in LAW_REQUIRED if all(getattr(args, d) is None for d in dests)]
    if missing:
        raise CliError(f"scalestudy plan: the following arguments are required with --law: {', '.join(missing)} "
                       "(see scalestudy plan --help)")
    given = [_flag(dest) for dest in WARMUP_ONLY if getattr(args, dest) is not None]
    if given:
        raise CliError(f"{given[0]}: only with --batch-warmup")
    args.factor = DEFAULT_FACTOR if args.factor is None else args.factor
    args.out = Path("plan.yaml") if args.out is None else args.out


def cmd_batch_warmup(args: argparse.Namespace) -> int:
    from scalestudy.endpoints import removed_on_failure
    from scalestudy.law.batch_warmup import BatchWarmup, warmup_from_cbs
    from scalestudy.law.cbs import CBSCurve
    from scalestudy.law.warmup_exports import EXPORT_FILES, WARMUP_FILE, skipped_lines, stage_lines, write_exports

    given = [_flag(dest) for dest in LAW_ONLY if getattr(args, dest) is not None]
    if given:
        raise CliError(f"{given[0]}: only with --law (a plan from a law), not with --batch-warmup")
    factor = 2 if args.factor is None else args.factor
    if not (float(factor).is_integer() and factor >= 2):
        raise CliError(f"--factor: --batch-warmup grows B by a whole factor ≥ 2, got {factor:g}")
    for dest in ("max_batch_size", "total_examples", "sequence_length"):
        if getattr(args, dest) is not None and getattr(args, dest) < 1:
            raise CliError(f"{_flag(dest)}: must be a whole number ≥ 1, got {getattr(args, dest)}")
    out = DEFAULT_OUT if args.out is None else args.out
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a folder; --batch-warmup writes a folder of files")
    others = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES) if out.is_dir() else []
    if others:
        raise CliError(f"--out {out}: holds other files ({others[0]}, ...); choose another folder (the warmup's "
                       "files are never written among other data)")
    check_out(out)
    curve = CBSCurve.load(args.batch_warmup)
    if args.max_batch_size is not None and args.max_batch_size < curve.base_batch_size:
        raise CliError(f"--max-batch-size: must be ≥ the base batch size {curve.base_batch_size} of "
                       f"{args.batch_warmup}, got {args.max_batch_size}")
    if args.total_examples is not None and args.total_examples < curve.base_batch_size:
        raise CliError(f"--total-examples: must hold one update of the base batch size {curve.base_batch_size}, "
                       f"got {args.total_examples}")
    given = {name: getattr(args, name) for name in ("max_batch_size", "basis", "total_examples")
             if getattr(args, name) is not None}  # the others: warmup_from_cbs's defaults
    warmup = warmup_from_cbs(curve, factor=int(factor), source=str(args.batch_warmup), **given)
    with removed_on_failure([out]):
        out.mkdir(parents=True, exist_ok=True)
        for name in EXPORT_FILES:  # a file of an earlier run that this one does not write would mislead
            (out / name).unlink(missing_ok=True)
        written = write_exports(warmup, out, args.sequence_length)
    assert BatchWarmup.load(out / WARMUP_FILE) == warmup  # what training code reads is what was planned
    print(f"batch warmup from {args.batch_warmup} (CBS at {len(curve.points)} checkpoint(s))")
    print("\n".join(stage_lines(warmup, args.sequence_length)))
    print("written:")
    for path, purpose in written:
        print(f"  {path}: {purpose}")
    for line in skipped_lines(warmup, args.sequence_length):
        print(line)
    return 0
