"""The ``scalestudy`` command line.

Every command validates its input before doing anything: a bad spec, flag or law file
prints one ``error: ...`` line and exits with code 2, with no Ray started and no MLflow
store created.

A little over 300 lines on purpose: the parser and every command's few lines in one file, so
the whole command line reads in one place; each command's work lives in the layers below.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from scalestudy.endpoints.uris import DEFAULT_TRACKING_URI

USAGE_ERROR = 2
DEBUG_ENV = "SCALESTUDY_DEBUG"  # set to 1: unexpected errors show their traceback
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
    parser.add_argument("--resume", action="store_true", help="continue the latest run of this study")
    parser.add_argument("--quiet", action="store_true", help="no periodic progress lines")
    _add_connect_timeout(parser)


def _add_connect_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                        help="give up on an address, tracking store or storage that does not answer within this "
                             "(default: $SCALESTUDY_CONNECT_TIMEOUT, else 20)")


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
    _add_connect_timeout(analyze)

    check = commands.add_parser("check-law", help="does a fitted law hold in a second study (larger B or N)?")
    check.add_argument("--law", type=Path, required=True)
    check_source = check.add_mutually_exclusive_group(required=True)
    check_source.add_argument("--experiment", help="MLflow experiment name of the check study")
    check_source.add_argument("--runs", type=Path, help="the check study's trials.parquet instead of MLflow")
    check.add_argument("--tracking-uri", help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})")
    check.add_argument("--out", type=Path, required=True, help="output folder: check.json, check.md, check.png")
    _add_connect_timeout(check)

    recommend = commands.add_parser("recommend", help="learning rate for a batch size from a fitted law")
    recommend.add_argument("--law", type=Path, required=True)
    recommend.add_argument("--batch-size", type=int, required=True)
    recommend.add_argument("--momentum", type=float, default=None,
                           help="default: 0, or the single momentum the law was fitted at")
    recommend.add_argument("--dataset-size", type=int, default=None,
                           help="N, training examples (needed when the law has gamma; default: the law's N)")

    plan = commands.add_parser("plan", help="the batch size, lr, momentum, schedule and time to train at, from a law")
    plan.add_argument("--law", type=Path, required=True)
    plan.add_argument("--workers", type=int, required=True, help="data-parallel workers (GPUs) to train on")
    plan.add_argument("--max-batch-per-worker", type=int, required=True, help="the largest batch one worker fits")
    speed = plan.add_mutually_exclusive_group(required=True)
    speed.add_argument("--examples-per-second-per-worker", type=float, help="one worker's training throughput")
    speed.add_argument("--throughput", type=float, help="measured examples per second of all workers together")
    length = plan.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=int, help="train this many epochs")
    length.add_argument("--target", type=float,
                        help="train until this test accuracy (the one the study's steps to target were counted "
                             "to), at the lr those steps were counted at")
    plan.add_argument("--momentum", type=float, help="default: the largest momentum the law was fitted at")
    plan.add_argument("--dataset-size", type=int, help="training examples per epoch (default: the law's)")
    plan.add_argument("--schedule", choices=("hybrid", "step_decay_lr", "constant"),
                      help="default: hybrid with --epochs, constant with --target")
    plan.add_argument("--milestones", help="epochs where the lr would decay, e.g. 27,54,72 (default 30/60/80 %%)")
    plan.add_argument("--factor", type=float, default=5.0, help="decay (or batch growth) factor at each milestone")
    plan.add_argument("--warmup-epochs", type=int, help="default: 5 %% of the epochs (1-5) when B is above the "
                      "law's smallest")
    plan.add_argument("--out", type=Path, default=Path("plan.yaml"), help="the plan file (default plan.yaml)")

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

    ui = commands.add_parser("ui", help="open the MLflow UI on the local store")
    ui.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    ui.add_argument("--port", type=int, default=5000)
    return parser


def _load(spec_path: Path, overrides: list[str]):
    from scalestudy.spec import load_spec

    return load_spec(spec_path, overrides)


def cmd_validate(args: argparse.Namespace) -> int:
    from scalestudy.search.cells import cell_budget, search_summary
    from scalestudy.trial.config import expand_cells

    spec = _load(args.spec, args.overrides)
    cells = expand_cells(spec)
    sections: dict[str, int] = {}
    search = spec.search
    for cell in cells:
        sections[cell.section] = sections.get(cell.section, 0) + cell_budget(spec, cell)
    detail = ", ".join(f"{name} {count}" for name, count in sections.items())
    bound = "" if search.algorithm == "grid" else "at most "
    workload = cells[0].workload
    sizes = sorted({cell.workload.dataset_size for cell in cells})
    n = ", ".join(str(size) for size in sizes)
    print(f"{spec.name}: valid; {bound}{sum(sections.values())} trials ({detail}) in {len(cells)} cells, "
          f"search {search.algorithm}; dataset {workload.dataset} (N={n}), "
          f"model {workload.model}, {workload.epochs} epochs, {spec.resources.workers_per_trial} worker(s) "
          f"per trial; spec hash {spec.spec_hash()}")
    if search.algorithm != "grid":
        print(search_summary(spec, cells))
    return 0


def _run(spec, args: argparse.Namespace):
    from scalestudy.run.progress import summary_table
    from scalestudy.run.study import run_study
    from scalestudy.run.tracking import ui_command, ui_link

    result = run_study(spec, address=args.address, storage=args.storage, tracking_uri=args.tracking_uri,
                       resume=args.resume, verbose=not args.quiet, connect_timeout_s=args.connect_timeout)
    counts = result.counts
    print()
    print(summary_table(result.rows, spec.objective))
    print(f"\n{spec.name}: {len(result.rows)} trials in {result.wall_seconds:.0f} s — {counts['ok']} ok, "
          f"{counts['diverged']} diverged, {counts['stopped']} stopped early, {counts['error']} errored")
    print(f"Tune results:  {result.run.path}")
    print(f"MLflow UI:     {ui_command(result.run.tracking_uri)}")
    print(f"               then open {ui_link(result.run.tracking_uri, result.run.experiment_id)}")
    return result


def cmd_run(args: argparse.Namespace) -> int:
    spec = _load(args.spec, args.overrides)
    result = _run(spec, args)
    return 0 if result.counts["error"] == 0 else 1


def _check_out(path: Path) -> None:
    from scalestudy.endpoints import check_writable_folder

    check_writable_folder(path, "--out")


def _trials(args: argparse.Namespace):
    """The trial table of ``--runs`` or of ``--experiment`` in ``--tracking-uri`` (the store must exist)."""
    from scalestudy.analysis import load_trials_from_mlflow, load_trials_from_parquet
    from scalestudy.endpoints import absolute_uri, check_existing_store, connect_timeout

    if args.runs is not None:
        return load_trials_from_parquet(args.runs)
    uri = absolute_uri(args.tracking_uri if args.tracking_uri is not None else DEFAULT_TRACKING_URI)
    check_existing_store(uri, "--tracking-uri", connect_timeout(args.connect_timeout))
    return load_trials_from_mlflow(args.experiment, uri)


def cmd_analyze(args: argparse.Namespace) -> int:
    from scalestudy.analysis import analyze
    from scalestudy.endpoints import removed_on_failure

    _check_out(args.out)
    trials = _trials(args)
    with removed_on_failure([args.out]):  # data too thin to fit: no half-written output folder
        result = analyze(trials, args.out)
    print(result.summary())
    return 0


def cmd_check_law(args: argparse.Namespace) -> int:
    from scalestudy.analysis.fits.law_check import check_law
    from scalestudy.analysis.outputs.law_check_files import check_table, verdict, write_check
    from scalestudy.endpoints import removed_on_failure
    from scalestudy.law import ScalingLaw

    _check_out(args.out)
    law = ScalingLaw.load(args.law)
    trials = _trials(args)
    source = f"`{args.runs}`" if args.runs is not None else f"MLflow experiment `{args.experiment}`"
    with removed_on_failure([args.out]):
        check = check_law(law, trials)
        args.out.mkdir(parents=True, exist_ok=True)
        files = write_check(check, law, args.law, source, args.out)
    print("\n".join(check_table(check)))
    print(f"\n{verdict(check)}")
    print(f"written: {', '.join(str(path) for path in files)}")
    return 0 if check.passed else 1


def cmd_recommend(args: argparse.Namespace) -> int:
    from scalestudy.law import MAX_BATCH_SIZE, ScalingLaw

    if not 0 < args.batch_size <= MAX_BATCH_SIZE:
        raise CliError(f"--batch-size: must be in 1-{MAX_BATCH_SIZE}, got {args.batch_size}")
    if args.momentum is not None and not 0.0 <= args.momentum < 1.0:
        raise CliError(f"--momentum: must be in [0, 1), got {args.momentum}")
    if args.dataset_size is not None and not 0 < args.dataset_size <= MAX_BATCH_SIZE:
        raise CliError(f"--dataset-size: must be in 1-{MAX_BATCH_SIZE}, got {args.dataset_size}")
    law = ScalingLaw.load(args.law)
    prediction = law.predict(batch_size=args.batch_size, momentum=args.momentum, dataset_size=args.dataset_size)
    print(prediction.describe())
    for warning in prediction.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from scalestudy.law import Plan, PlanRequest, ScalingLaw, make_plan
    from scalestudy.law.plan import PLAN_SCHEMA
    from scalestudy.law.plan_text import describe

    milestones = None
    if args.milestones is not None:
        try:
            milestones = tuple(int(part) for part in args.milestones.split(",") if part.strip())
        except ValueError:
            raise CliError(f"--milestones {args.milestones}: must be epochs separated by commas, e.g. 27,54,72") \
                from None
    out = args.out
    if out.exists() and (not out.is_file() or _schema_of(out) != PLAN_SCHEMA):
        raise CliError(f"--out {out}: exists and is not a plan file; choose another name (a plan is never "
                       "written over other data)")
    _check_out(out.parent if str(out.parent) else Path("."))
    law = ScalingLaw.load(args.law)
    request = PlanRequest(args.workers, args.max_batch_per_worker, args.examples_per_second_per_worker,
                          args.throughput, args.epochs, args.target, args.momentum, args.dataset_size,
                          args.schedule, milestones, args.factor, args.warmup_epochs, str(args.law))
    plan = make_plan(law, request)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.save(out)
    assert Plan.load(out) == plan  # what training code reads is what was planned
    print(f"plan from {args.law} ({law.form})")
    print("\n".join(describe(plan)))
    print(f"written: {out}")
    return 0


def _schema_of(path: Path) -> str | None:
    """The ``schema`` of a small JSON or YAML file, or None (not readable, not a mapping)."""
    from scalestudy.law.records import LawFileError, read_document

    try:
        data = read_document(path, "file", 16 * 2**20, "a plan")
    except LawFileError:
        return None
    return data.get("schema") if isinstance(data, dict) else None


def cmd_demo(args: argparse.Namespace) -> int:
    from scalestudy.analysis import analyze, load_trials_from_mlflow

    from scalestudy.spec import find_search_space

    spec = _load(args.spec or find_search_space("quickstart.yaml"), args.overrides)
    _check_out(args.out)  # before the study, not after it
    result = _run(spec, args)
    trials = load_trials_from_mlflow(spec.experiment_name, result.run.tracking_uri)
    analysis = analyze(trials, args.out)
    print()
    print(analysis.summary())
    print(f"\nFigures and report: {args.out.resolve()}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from scalestudy.endpoints import absolute_uri, connect_timeout
    from scalestudy.run.interpolate import interpolate_runs
    from scalestudy.run.storage import default_storage
    from scalestudy.run.storage_checks import check_readable_storage

    if not 3 <= args.points <= MAX_POINTS:
        raise CliError(f"--points: must be in 3-{MAX_POINTS}, got {args.points}")
    _check_out(args.out)
    if args.storage is not None:
        check_readable_storage(args.storage, "--storage", connect_timeout(args.connect_timeout))
    output = interpolate_runs(args.run_a, args.run_b, tracking_uri=absolute_uri(args.tracking_uri),
                              storage_path=args.storage or default_storage(), out_dir=args.out, points=args.points,
                              connect_timeout_s=args.connect_timeout, bn_statistics=args.bn_statistics)
    print(f"figure: {output.figure}\ndata:   {output.data}\nMLflow run: {output.mlflow_run_id}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from scalestudy.endpoints import absolute_uri, check_existing_store, connect_timeout
    from scalestudy.run.storage import default_storage
    from scalestudy.run.storage_checks import check_readable_storage
    from scalestudy.run.sync import sync_study

    timeout_s = connect_timeout(args.connect_timeout)
    if args.storage is not None:
        check_readable_storage(args.storage, "--storage", timeout_s)
    if args.tracking_uri is not None:  # the study's own store must exist: sync fills it, never creates one
        check_existing_store(absolute_uri(args.tracking_uri), "--tracking-uri", timeout_s)
    summary = sync_study(args.study, args.storage or default_storage(), args.tracking_uri)
    print(f"{args.study}: {summary.trials} trials read, {summary.runs_created} runs created, "
          f"{summary.points_logged} metric points logged, {summary.finished} runs closed")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from scalestudy.bench import BENCHMARKS, run_benchmark

    names = BENCHMARKS.names() if args.name == "all" else [args.name]
    for name in names:
        if name not in BENCHMARKS:
            raise CliError(f"bench: unknown benchmark {name!r}; known: {', '.join(BENCHMARKS.names())}, all")
    for name in names:
        table = run_benchmark(name, tiny=args.tiny)
        print(table.to_json() if args.json else table.render(), flush=True)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import shutil
    import socket

    from scalestudy.endpoints import check_existing_store, connect_timeout

    if not 1 <= args.port <= 65535:
        raise CliError(f"--port: must be in 1-65535, got {args.port}")
    if args.tracking_uri.startswith(("http://", "https://")):
        raise CliError(f"--tracking-uri: {args.tracking_uri} is a server already; open it in a browser")
    check_existing_store(args.tracking_uri, "--tracking-uri", connect_timeout(None))  # the UI never creates one
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as error:
            raise CliError(f"--port {args.port}: cannot listen there ({error.strerror or error}); "
                           "choose another port") from None
    executable = shutil.which("mlflow")
    if executable is None:
        raise CliError("ui: the mlflow command is not on PATH (pip install mlflow)")
    command = [executable, "ui", "--backend-store-uri", args.tracking_uri, "--port", str(args.port)]
    print(f"open http://127.0.0.1:{args.port}/#/experiments?workflowType=machine_learning", flush=True)
    os.execv(executable, command)
    return 0  # not reached


COMMANDS = {"validate": cmd_validate, "run": cmd_run, "analyze": cmd_analyze, "recommend": cmd_recommend,
            "plan": cmd_plan, "check-law": cmd_check_law,
            "demo": cmd_demo, "interpolate": cmd_interpolate, "sync": cmd_sync, "bench": cmd_bench, "ui": cmd_ui}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The user's code named by import path resolves from the working directory, as under `python -m` (the
    # `scalestudy` script puts its own folder on sys.path instead); Ray puts that folder on its workers' path.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from scalestudy.endpoints import StudyError, TrackingError
    from scalestudy.spec import SpecError

    one_line_errors: tuple[type[BaseException], ...] = (CliError, SpecError, StudyError, TrackingError)
    try:
        from scalestudy.analysis import AnalysisError
        from scalestudy.law import LawFileError

        one_line_errors += (AnalysisError, LawFileError)
    except ImportError:  # analysis layer not installed in this build
        pass
    try:
        return COMMANDS[args.command](args)
    except one_line_errors as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        hint = "; continue with: scalestudy run SPEC --resume" if args.command in ("run", "demo") else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - never a traceback for the user; a hint to get one
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        print(f"error: {args.command}: unexpected {type(error).__name__}: {_one_line(error)} (if the input looks "
              f"right, this is a bug: rerun with {DEBUG_ENV}=1 for the traceback and report it)", file=sys.stderr)
        return USAGE_ERROR


def _one_line(error: BaseException) -> str:
    from scalestudy.endpoints import redact_uri

    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return redact_uri(" ".join(lines)[:500]) if lines else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
