"""The commands that run studies and look at them: ``validate``, ``run``, ``demo``, ``interpolate``,
``sync``, ``bench`` and ``ui``. Each is a few lines over the layers below, imported when it runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scalestudy.cli.arguments import MAX_POINTS, CliError, check_out


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
        sections[cell.section] = sections.get(cell.section, 0) + cell_budget(spec, cell, cells)
    if search.algorithm == "adaptive":  # one budget for the study: no per-section count
        from scalestudy.search.cells import planned_trials

        sections = {"all sections": planned_trials(spec, cells)}
    detail = ", ".join(f"{name} {count}" for name, count in sections.items())
    bound = "" if search.algorithm == "grid" else "at most "
    workload = cells[0].workload
    sizes = sorted({cell.workload.dataset_size for cell in cells})
    n = ", ".join(str(size) for size in sizes)
    print(f"{spec.name}: valid; {bound}{sum(sections.values())} trials ({detail}) in {len(cells)} cells, "
          f"search {search.algorithm}; dataset {workload.dataset} (N={n}), "
          f"model {workload.model}, {workload.epochs} epochs, {spec.resources.workers_per_trial} worker(s) "
          f"per trial; spec hash {spec.spec_hash()}")
    if spec.branching is not None:  # one base run: no law to design, its branches instead
        from scalestudy.run.branching import branch_summary

        print(branch_summary(spec, cells[0].trial(cells[0].lr_grid[0])))
        return 0
    if search.algorithm != "grid":
        print(search_summary(spec, cells))
    _print_design(spec, cells)
    return 0


def _print_design(spec, cells) -> None:
    """What the design can deliver (lrs per cell, intervals, a law, ...); a warning when it gives no law."""
    import sys

    from scalestudy.search.design import design_lines

    lines, warnings = design_lines(spec, cells)
    print("\n".join(lines))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _mode(args: argparse.Namespace) -> str:
    return "resume" if args.resume else "extend" if args.extend else "new" if args.new else "run"


def _run(spec, args: argparse.Namespace):
    """The study run, its summary printed; None when a signal stopped it (what to do next is printed)."""
    from scalestudy.run.interrupts import StudyInterrupted
    from scalestudy.run.summary import branched_summary, summary_table
    from scalestudy.run.study import run_study
    from scalestudy.run.tracking import ui_command, ui_link

    try:
        result = run_study(spec, address=args.address, storage=args.storage, tracking_uri=args.tracking_uri,
                           mode=_mode(args), verbose=not args.quiet, connect_timeout_s=args.connect_timeout)
    except StudyInterrupted as stopped:
        print(interrupted_message(stopped, resume_command(args)), file=sys.stderr, flush=True)
        return stopped
    counts = result.counts
    earlier = f" (and {result.earlier} that had finished before)" if result.earlier else ""
    print()
    print(summary_table(result.rows, spec.objective))
    trained = _counted(len(result.rows), "trial")
    if result.branch_rows:
        print()
        print(branched_summary(result.branch_rows))
        roles = [row["role"] for row in result.branch_rows]
        trained += f" and {_counted(roles.count('branch'), 'branch', 'branches')}"
        if "compare" in roles:
            trained += f" and {_counted(roles.count('compare'), 'comparison run')}"
    print(f"\n{spec.name}: {trained} in {result.wall_seconds:.0f} s{earlier} — {counts['ok']} ok, "
          f"{counts['diverged']} diverged, {counts['stopped']} stopped early, {counts['error']} errored")
    print(f"Tune results:  {result.run.path}")
    print(f"MLflow UI:     {ui_command(result.run.tracking_uri)}")
    print(f"               then open {ui_link(result.run.tracking_uri, result.run.experiment_id)}")
    print(f"               {_cell_runs(result.run)}")
    return result


def _counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _cell_runs(run) -> str:
    """Each cell's seeds aggregated in an MLflow run of its own (as ``analyze`` does), or why not."""
    from scalestudy.analysis.outputs.cell_runs import publish_cell_runs
    from scalestudy.endpoints import answers

    if not answers(run.tracking_uri):  # a quick probe spares the MLflow client's retries (minutes)
        return "cell runs over seeds not written (the tracking server does not answer); `analyze` writes them"
    try:
        return publish_cell_runs(run.tracking_uri, run.experiment_id).line()
    except Exception as error:  # noqa: BLE001 - the study is done and tracked; `analyze` writes them too
        return f"cell runs over seeds not written ({str(error).strip().splitlines()[0][:200]}); `analyze` writes them"


def interrupted_message(stopped, resume: str) -> str:
    """What an interrupted study says on stderr: how far it got, what MLflow holds, the command that continues it."""
    state = stopped.state
    if state is None:
        return f"interrupted ({stopped.signal_name}) before the study started; nothing to resume"
    lines = [f"interrupted ({stopped.signal_name})"]
    if state.marked:
        lines[0] += (f": {state.finished} of {state.planned} planned trials ended, {state.unfinished} interrupted "
                     f"(MLflow: the study's run and theirs marked KILLED)")
    else:
        lines[0] += f" ({state.planned} planned trials); MLflow could not be told: its runs show RUNNING"
    lines.append(f"continue with: {resume}")
    return "\n".join(lines)


def resume_command(args: argparse.Namespace) -> str:
    """The command that continues this one: the same spec, overrides and endpoints, with ``--resume``."""
    import shlex

    from scalestudy.endpoints import redact_uri

    words = ["scalestudy", args.command]
    if args.command == "run":
        words.append(str(args.spec))
    elif args.spec is not None:
        words += ["--spec", str(args.spec)]
    for override in args.overrides:
        words += ["--set", override]
    for flag, value in (("--address", args.address), ("--storage", args.storage),
                        ("--tracking-uri", redact_uri(args.tracking_uri) if args.tracking_uri else None),
                        ("--connect-timeout", args.connect_timeout),
                        ("--out", args.out if args.command == "demo" else None)):
        if value is not None:
            words += [flag, str(value)]
    words += ["--quiet"] if args.quiet else []
    return shlex.join([*words, "--resume"])


def cmd_run(args: argparse.Namespace) -> int:
    from scalestudy.run.interrupts import StudyInterrupted

    spec = _load(args.spec, args.overrides)
    result = _run(spec, args)
    if isinstance(result, StudyInterrupted):
        return result.exit_code
    return 0 if result.counts["error"] == 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from scalestudy.analysis import analyze, load_trials_from_mlflow
    from scalestudy.run.interrupts import StudyInterrupted
    from scalestudy.spec import find_search_space

    spec = _load(args.spec or find_search_space("quickstart.yaml"), args.overrides)
    check_out(args.out)  # before the study, not after it
    result = _run(spec, args)
    if isinstance(result, StudyInterrupted):
        return result.exit_code
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
    check_out(args.out)
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
    from scalestudy.bench import BENCHMARKS, OPTIONS, run_benchmark

    names = BENCHMARKS.names() if args.name == "all" else [args.name]
    for name in names:
        if name not in BENCHMARKS:
            raise CliError(f"bench: unknown benchmark {name!r}; known: {', '.join(BENCHMARKS.names())}, all")
    flags = dict.fromkeys(key for keys in OPTIONS.values() for key in keys)  # every benchmark option is a flag
    options = {key: getattr(args, key) for key in flags if getattr(args, key) is not None}
    for key in options:
        takers = [name for name, keys in OPTIONS.items() if key in keys]
        if any(key not in OPTIONS.get(name, ()) for name in names):
            raise CliError(f"--{key}: only for bench {' | '.join(takers)} (got bench {args.name})")
    if options.get("repetitions", 1) < 1:
        raise CliError(f"--repetitions: must be at least 1, got {args.repetitions}")
    if not 0 < options.get("fraction", 0.25) <= 1:
        raise CliError(f"--fraction: must be a share of the grid in (0, 1], got {args.fraction:g}")
    for name in names:
        table = run_benchmark(name, tiny=args.tiny, **options)
        print(table.to_json() if args.json else table.render(), flush=True)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import importlib.util
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
    # The mlflow beside this interpreter (a dependency, so installed), not whichever is on PATH: an
    # unactivated venv's bin/ is not on PATH, and another mlflow there may read another schema.
    if importlib.util.find_spec("mlflow") is None:
        raise CliError(f"ui: mlflow is not installed for {sys.executable} (pip install mlflow)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.tracking_uri, "--port", str(args.port)]
    print(f"open http://127.0.0.1:{args.port}/#/experiments?workflowType=machine_learning", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached
