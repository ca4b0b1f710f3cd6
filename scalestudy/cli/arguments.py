"""The command line's arguments: the parser of every command and its flags, and the checks of
arguments that need no layer below (one-line usage errors, exit code 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from scalestudy.endpoints.uris import DEFAULT_TRACKING_URI

USAGE_ERROR = 2
MAX_POINTS = 1001


class CliError(Exception):
    """A one-line usage error (exit code 2)."""


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec field, e.g. --set grid.batch_size=[32,128] (repeatable)")


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    _add_set(parser)
    parser.add_argument("--address", help="existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: local Ray)")
    parser.add_argument("--storage", help="Tune storage: a shared path or s3://bucket/prefix (default ./ray_results)")
    parser.add_argument("--tracking-uri", help=f"MLflow tracking URI (default: the spec's, {DEFAULT_TRACKING_URI})")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--resume", action="store_true", help="continue the latest run of this study, with its spec")
    how.add_argument("--extend", action="store_true", help="add the trials of a grown spec (more seeds, batch "
                     "sizes, lrs, ...) to the study; finished trials are not rerun")
    how.add_argument("--new", action="store_true", help="run the study again as a second, separate run (a plain "
                     "run refuses a study that ran already)")
    parser.add_argument("--quiet", action="store_true", help="no periodic progress lines")
    _add_connect_timeout(parser)


def _add_group(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", default=None,
                        help="which law of a study with several (one per optimizer and section), e.g. adamw/lm: "
                             "read from laws/index.json beside --law")


def _add_connect_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                        help="give up on an address, tracking store or storage that does not answer within this "
                             "(default: $SCALESTUDY_CONNECT_TIMEOUT, else 20)")


def _add_guard(parser: argparse.ArgumentParser, extrapolation: bool = True) -> None:
    """The flags of the refusals of a useless law (scalestudy.law.guards)."""
    parser.add_argument("--max-interval-ratio", type=float, default=4.0, metavar="F",
                        help="refuse the law where its 95 %% interval of the lr reaches more than F times above or "
                             "below it (default 4)")
    if extrapolation:
        parser.add_argument("--max-extrapolation", type=float, default=4.0, metavar="F",
                            help="refuse (plan: do not choose) a batch size more than F times beyond the largest or "
                                 "smallest the law was fitted on (default 4)")
    parser.add_argument("--force", action="store_true", help="use a law that would be refused, with a warning")


def _add_batch_warmup(plan: argparse.ArgumentParser) -> None:
    """``plan --batch-warmup``'s own flags (it shares ``--factor`` and ``--out`` with the law's plan)."""
    from scalestudy.law.batch_warmup import BASES

    plan.add_argument("--max-batch-size", type=int, help="--batch-warmup: the largest global batch to grow to "
                      "(default: as far as CBS admits)")
    plan.add_argument("--basis", choices=BASES, help="--batch-warmup: grow B while it stays within "
                      "the lower end of CBS's 95 %% interval (ci_low, the default) or CBS itself (estimate)")
    plan.add_argument("--total-examples", type=int, help="--batch-warmup: the run's length in examples (default: "
                      "the base run's, from cbs.json)")
    plan.add_argument("--sequence-length", type=int, metavar="L", help="--batch-warmup: tokens per example, for the "
                      "trainers that count in tokens (Megatron-LM's thresholds, OLMo-core)")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: scalestudy run: MESSAGE`` and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(USAGE_ERROR, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scalestudy", description="Hyperparameter-scaling studies (batch size, learning "
                     "rate, momentum) on Ray Tune, tracked in MLflow.")
    from scalestudy import __version__

    parser.add_argument("--version", action="version", version=f"scalestudy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser("validate", help="check a study spec and print what it would run")
    validate.add_argument("spec", type=Path)
    _add_set(validate)

    run = commands.add_parser("run", help="run a study on Ray Tune, tracked in MLflow")
    run.add_argument("spec", type=Path)
    _add_run_flags(run)

    analyze = commands.add_parser("analyze", help="fit the scaling law of a finished study")
    source = analyze.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", help="MLflow experiment name of the study")
    source.add_argument("--runs", type=Path, help="a trials.parquet table instead of MLflow")
    analyze.add_argument("--tracking-uri", help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})")
    analyze.add_argument("--out", type=Path, required=True, help="output folder")
    analyze.add_argument("--allow-partial", action="store_true", help="fit the trials that finished of a study "
                         "that did not (interrupted, or still running); the report says so")
    _add_connect_timeout(analyze)

    check = commands.add_parser("check-law", help="does a fitted law hold in a second study (larger B or N)?")
    check.add_argument("--law", type=Path, required=True)
    _add_group(check)
    check_source = check.add_mutually_exclusive_group(required=True)
    check_source.add_argument("--experiment", help="MLflow experiment name of the check study")
    check_source.add_argument("--runs", type=Path, help="the check study's trials.parquet instead of MLflow")
    check.add_argument("--tracking-uri", help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})")
    check.add_argument("--out", type=Path, required=True, help="output folder: check.json, check.md, check.png")
    _add_guard(check, extrapolation=False)  # checking the law at the scale one trains at tests an extrapolation
    _add_connect_timeout(check)

    recommend = commands.add_parser("recommend", help="learning rate for a batch size from a fitted law")
    recommend.add_argument("--law", type=Path, required=True)
    _add_group(recommend)
    recommend.add_argument("--batch-size", type=int, required=True)
    recommend.add_argument("--momentum", type=float, default=None,
                           help="default: 0, or the single momentum the law was fitted at")
    recommend.add_argument("--dataset-size", type=int, default=None,
                           help="N, training examples (needed when the law has gamma; default: the law's N)")
    _add_guard(recommend)

    plan = commands.add_parser("plan", help="the batch size, lr, momentum, schedule and time to train at, from a law "
                               "(--law); or a batch-size warmup from CBS(t) (--batch-warmup)")
    what = plan.add_mutually_exclusive_group(required=True)
    what.add_argument("--law", type=Path)
    what.add_argument("--batch-warmup", type=Path, metavar="CBS.json", help="plan a batch-size warmup from the "
                      "critical batch size a branched study measured (cbs.json), with its files for PyTorch, "
                      "Hugging Face, Megatron-LM, OLMo-core and Levanter (its own flags: --max-batch-size, --basis, "
                      "--total-examples, --sequence-length; with --factor and --out)")
    _add_group(plan)
    # With --law these five are required (cmd_plan checks them: argparse cannot make a flag required by another).
    plan.add_argument("--workers", type=int, help="data-parallel workers (GPUs) to train on")
    plan.add_argument("--max-batch-per-worker", type=int, help="the largest batch one worker fits")
    speed = plan.add_mutually_exclusive_group()
    speed.add_argument("--examples-per-second-per-worker", type=float, help="one worker's training throughput")
    speed.add_argument("--throughput", type=float, help="measured examples per second of all workers together")
    length = plan.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="train this many epochs")
    length.add_argument("--target", type=float,
                        help="train until this test accuracy (the one the study's steps to target were counted "
                             "to), at the lr those steps were counted at")
    plan.add_argument("--momentum", type=float, help="default: the largest momentum the law was fitted at")
    plan.add_argument("--dataset-size", type=int, help="training examples per epoch (default: the law's)")
    plan.add_argument("--schedule", choices=("hybrid", "step_decay_lr", "constant"),
                      help="default: hybrid with --epochs, constant with --target")
    plan.add_argument("--milestones", help="epochs where the lr would decay, e.g. 27,54,72 (default 30/60/80 %%)")
    plan.add_argument("--factor", type=float, help="decay (or batch growth) factor at each milestone (default 5); "
                      "--batch-warmup: B grows by this whole factor (default 2)")
    plan.add_argument("--warmup-epochs", type=int, help="default: 5 %% of the epochs (1-5) when B is above the "
                      "law's smallest")
    plan.add_argument("--out", type=Path, help="the plan file (default plan.yaml); --batch-warmup: the output "
                      "folder (default batch_warmup/)")
    _add_guard(plan)
    _add_batch_warmup(plan)

    demo = commands.add_parser("demo", help="run the quickstart study, analyze it, print the law")
    demo.add_argument("--spec", type=Path, help="spec to run instead of search_spaces/quickstart.yaml")
    demo.add_argument("--out", type=Path, default=Path("scalestudy_out"), help="analysis output folder")
    _add_run_flags(demo)

    interp = commands.add_parser("interpolate", help="loss and accuracy on the line between two trials' weights")
    interp.add_argument("run_a", help="MLflow run id of trial A (α = 0)")
    interp.add_argument("run_b", help="MLflow run id of trial B (α = 1)")
    interp.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    interp.add_argument("--storage", help="Tune storage the study ran with (default ./ray_results)")
    interp.add_argument("--out", type=Path, default=Path("interpolation"), help="output folder")
    interp.add_argument("--points", type=int, default=25, help=f"values of α in [-1, 2] (3 to {MAX_POINTS})")
    interp.add_argument("--bn-statistics", choices=("recompute", "interpolate"), default="recompute",
                        help="batch-norm running statistics at each α: recomputed on training batches "
                             "(default) or interpolated with the weights")
    _add_connect_timeout(interp)

    sync = commands.add_parser("sync", help="back-fill MLflow from a study's Ray storage (after an outage)")
    sync.add_argument("study", help="the study's name (its spec's name)")
    sync.add_argument("--storage", help="Tune storage the study ran with (default ./ray_results)")
    sync.add_argument("--tracking-uri", help="MLflow URI to write to (default: the one the study used)")
    _add_connect_timeout(sync)

    from scalestudy.bench import BENCHMARKS  # the registry alone: no benchmark module is imported

    bench = commands.add_parser("bench", help="benchmarks: figures side by side, as ratios")
    bench.add_argument("name", help=" | ".join([*BENCHMARKS.names(), "all"]))
    bench.add_argument("--tiny", action="store_true", help="smallest sizes (CI keeps the benchmarks working)")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--replay", type=Path, metavar="TABLE.parquet",
                       help="search: replay this recorded study (a trials.parquet analyze wrote) instead of the "
                            "shipped reference tables")
    bench.add_argument("--repetitions", type=int, metavar="N", help="search: repetitions per table and algorithm; "
                                                                    "cbs: base runs per design (default 20; 2 with "
                                                                    "--tiny)")
    bench.add_argument("--fraction", type=float, metavar="F",
                       help="search: the budget, a share of the recorded grid's trial-epochs (default 0.25)")

    ui = commands.add_parser("ui", help="open the MLflow UI on the local store")
    ui.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    ui.add_argument("--port", type=int, default=5000)
    return parser


def check_out(path: Path) -> None:
    from scalestudy.endpoints import check_writable_folder

    check_writable_folder(path, "--out")
