"""The commands that fit and use a law: ``analyze``, ``check-law``, ``recommend`` and ``plan``. Each is a
few lines over the analysis and the law, imported when it runs."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from scalestudy.cli.arguments import CliError, check_out
from scalestudy.endpoints.uris import DEFAULT_TRACKING_URI


def _trials(args: argparse.Namespace, allow_partial: bool = True):
    """The trial table of ``--runs`` or of ``--experiment`` in ``--tracking-uri`` (the store must exist);
    a study that did not finish is refused unless ``allow_partial``."""
    from scalestudy.analysis import load_trials_from_mlflow, load_trials_from_parquet
    from scalestudy.endpoints import absolute_uri, check_existing_store, connect_timeout

    if args.runs is not None:
        return load_trials_from_parquet(args.runs)
    uri = absolute_uri(args.tracking_uri if args.tracking_uri is not None else DEFAULT_TRACKING_URI)
    check_existing_store(uri, "--tracking-uri", connect_timeout(args.connect_timeout))
    return load_trials_from_mlflow(args.experiment, uri, allow_partial=allow_partial)


def cmd_analyze(args: argparse.Namespace) -> int:
    from scalestudy.analysis import analyze
    from scalestudy.endpoints import removed_on_failure

    check_out(args.out)
    if args.experiment is not None and _analyze_branched(args):
        return 0
    trials = _trials(args, allow_partial=args.allow_partial)
    with removed_on_failure([args.out]):  # data too thin to fit: no half-written output folder
        result = analyze(trials, args.out)
    print(result.summary())
    if result.cell_runs is not None:
        print(f"MLflow: {result.cell_runs.line()}")
    if "partial" in trials.provenance:  # --allow-partial on a study that did not finish: said here too
        print(f"partial study: {trials.provenance['partial']}")
    return 0


def _analyze_branched(args: argparse.Namespace) -> bool:
    """A branched study (issue 23) is analysed into CBS(t) instead of a law; False for any other study."""
    from mlflow.tracking import MlflowClient

    from scalestudy.analysis.outputs.branch_analysis import analyze_branches
    from scalestudy.analysis.inputs.branch_table import is_branched, load_branch_study
    from scalestudy.endpoints import absolute_uri, check_existing_store, connect_timeout, removed_on_failure

    uri = absolute_uri(args.tracking_uri if args.tracking_uri is not None else DEFAULT_TRACKING_URI)
    check_existing_store(uri, "--tracking-uri", connect_timeout(args.connect_timeout))
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(args.experiment)
    if experiment is None or not is_branched(MlflowClient(tracking_uri=uri), experiment.experiment_id):
        return False
    with removed_on_failure([args.out]):
        result = analyze_branches(load_branch_study(uri, experiment.experiment_id), args.out)
    print(result.summary())
    return True


def cmd_check_law(args: argparse.Namespace) -> int:
    from scalestudy.analysis.fits.law_check import check_law
    from scalestudy.analysis.outputs.law_check_files import check_table, verdict, write_check
    from scalestudy.endpoints import removed_on_failure
    from scalestudy.law import ScalingLaw
    from scalestudy.law.guards import enforce

    check_out(args.out)
    guard = _guard(args)
    law_path = _law_path(args)
    law = ScalingLaw.load(law_path)
    trials = _trials(args)
    source = f"`{args.runs}`" if args.runs is not None else f"MLflow experiment `{args.experiment}`"
    with removed_on_failure([args.out]):
        check = check_law(law, trials)
        # The law's own interval at each cell: too wide, and the check could not fail (exit 2 unless --force).
        forced = enforce(law, [law.predict(c.batch_size, c.momentum, c.dataset_size) for c in check.cells
                               if c.predicted is not None], guard)
        check = replace(check, warnings=(*check.warnings, *forced))  # check.json and check.md keep them
        args.out.mkdir(parents=True, exist_ok=True)
        files = write_check(check, law, law_path, source, args.out)
    print("\n".join(check_table(check)))
    print(f"\n{verdict(check)}")
    print(f"written: {', '.join(str(path) for path in files)}")
    print(_log_check(check, law, law_path, trials.provenance, args, source))
    for warning in forced:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if check.passed else 1


def _log_check(check, law, law_path: Path, provenance: dict, args: argparse.Namespace, source: str) -> str:
    """Log the check to MLflow where the law (else the checked study) has its run; the line that says where.
    The files are written: a store that cannot be reached is a line, not an error."""
    from scalestudy.analysis.outputs.check_run import check_run_place, publish_check
    from scalestudy.endpoints import check_existing_store, connect_timeout, redact_uri

    place = check_run_place(law, provenance)
    if place is None:
        return "MLflow: not logged (neither the law file nor the check study records an MLflow run)"
    try:
        check_existing_store(place.tracking_uri, "the law's tracking URI", connect_timeout(args.connect_timeout))
        run_id = publish_check(check, law, place, law_path, source, args.out)
    except Exception as error:  # noqa: BLE001 - the check is written; say why its run is missing
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"MLflow: not logged to {redact_uri(place.tracking_uri)} ({redact_uri(first)[:300]})"
    under = f" under {place.whose}'s run {place.parent_run_id}" if place.parent_run_id else ""
    return f"MLflow: check run {run_id}{under} in {redact_uri(place.tracking_uri)}"


def cmd_recommend(args: argparse.Namespace) -> int:
    from scalestudy.law import MAX_BATCH_SIZE, ScalingLaw
    from scalestudy.law.guards import enforce
    from scalestudy.law.adamw_rules import adamw_set, enforce_surge
    from scalestudy.law.recommendation import recommendation

    if not 0 < args.batch_size <= MAX_BATCH_SIZE:
        raise CliError(f"--batch-size: must be in 1-{MAX_BATCH_SIZE}, got {args.batch_size}")
    if args.momentum is not None and not 0.0 <= args.momentum < 1.0:
        raise CliError(f"--momentum: must be in [0, 1), got {args.momentum}")
    if args.dataset_size is not None and not 0 < args.dataset_size <= MAX_BATCH_SIZE:
        raise CliError(f"--dataset-size: must be in 1-{MAX_BATCH_SIZE}, got {args.dataset_size}")
    guard = _guard(args)
    law = ScalingLaw.load(_law_path(args))
    prediction = law.predict(batch_size=args.batch_size, momentum=args.momentum, dataset_size=args.dataset_size)
    forced = enforce(law, [prediction], guard)  # a useless law: one error line, unless --force
    forced += enforce_surge(law, args.batch_size, guard)
    print("\n".join(recommendation(law, prediction)))
    found = adamw_set(law, prediction)  # AdamW laws: β1, β2, λ and the EMA too
    if found is not None:
        print("\n".join(found.lines()))
    for warning in [*forced, *prediction.warnings]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _law_path(args: argparse.Namespace) -> Path:
    """``--law``, or with ``--group`` that law of the study (``laws/index.json`` beside ``--law``);
    a study with several laws and no ``--group`` uses law.json's, said on stderr."""
    from scalestudy.law.groups import LawIndex, index_path, select_law

    if args.group is None and args.law.name == "law.json" and index_path(args.law).exists():
        groups = LawIndex.load(index_path(args.law)).groups
        print(f"note: this study has {len(groups)} laws ({', '.join(groups)}): using law.json's, the primary; "
              "--group selects another", file=sys.stderr)
    return select_law(args.law, args.group)


def _guard(args: argparse.Namespace):
    """The refusals' settings from ``--max-interval-ratio``, ``--max-extrapolation`` and ``--force``."""
    from scalestudy.law.guards import Guard

    return Guard(args.max_interval_ratio, getattr(args, "max_extrapolation", None), args.force)


def cmd_plan(args: argparse.Namespace) -> int:
    from scalestudy.cli.warmup_command import check_law_plan_flags, cmd_batch_warmup
    from scalestudy.law import Plan, PlanRequest, ScalingLaw, make_plan
    from scalestudy.law.plan import PLAN_SCHEMA
    from scalestudy.law.plan_text import describe

    if args.batch_warmup is not None:
        return cmd_batch_warmup(args)
    check_law_plan_flags(args)
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
    check_out(out.parent if str(out.parent) else Path("."))
    guard = _guard(args)
    law_path = _law_path(args)
    law = ScalingLaw.load(law_path)
    request = PlanRequest(args.workers, args.max_batch_per_worker, args.examples_per_second_per_worker,
                          args.throughput, args.epochs, args.target, args.momentum, args.dataset_size,
                          args.schedule, milestones, args.factor, args.warmup_epochs, str(law_path), guard)
    plan = make_plan(law, request)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.save(out)
    assert Plan.load(out) == plan  # what training code reads is what was planned
    print(f"plan from {law_path} ({law.form})")
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
