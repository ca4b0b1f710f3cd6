"""The ``scalestudy`` command line.

Every command validates its input before doing anything: a bad spec, flag or law file
prints one ``error: ...`` line and exits with code 2, with no Ray started and no MLflow
store created.

* :mod:`.arguments`: the parser of every command and its flags;
* :mod:`.study_commands`: validate, run, demo, interpolate, sync, bench, ui;
* :mod:`.law_commands`: analyze, check-law, recommend, plan;
* :mod:`.warmup_command`: plan --batch-warmup;
* here, :func:`main`: a command run with one-line errors.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from scalestudy.cli.arguments import USAGE_ERROR, CliError, build_parser
from scalestudy.cli.law_commands import cmd_analyze, cmd_check_law, cmd_plan, cmd_recommend
from scalestudy.cli.study_commands import cmd_bench, cmd_demo, cmd_interpolate, cmd_run, cmd_sync, cmd_ui, cmd_validate

DEBUG_ENV = "SCALESTUDY_DEBUG"  # set to 1: unexpected errors show their traceback

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
        from scalestudy.law import LawError

        one_line_errors += (AnalysisError, LawError)
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


__all__ = ["COMMANDS", "DEBUG_ENV", "USAGE_ERROR", "CliError", "build_parser", "main"]
