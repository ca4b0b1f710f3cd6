"""Calls into the user's code: what it may raise, and where in it a failure happened.

* :func:`user_call` guards a call: ``SystemExit`` and ``KeyboardInterrupt`` raised *by the user's code*
  (argparse parsing ``sys.argv`` in a builder, a stray ``exit()``) become :class:`UserExit`, an ordinary
  exception every caller already turns into one line; a real Ctrl-C (SIGINT) of the process still
  interrupts. What the code prints meanwhile is held back and shown only if it succeeds, so a failure
  stays one line (argparse's own ``error:`` line is quoted in the message instead).
* :func:`user_frame` finds the innermost frame of a traceback that is the user's code (not scalestudy's,
  torch's, the standard library's or another installed library's), as ``path/to/file.py:LINE``.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import sysconfig
import threading
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

# Installed libraries whose frames are never the user's, even when a spec names one of their objects
# (``torch.optim:AdamW``): a failure inside them is located at the user's frame that called them.
LIBRARIES = ("scalestudy", "torch", "torchvision", "ray", "numpy", "PIL", "pydantic", "mlflow")


class UserExit(Exception):
    """The user's code raised ``SystemExit`` or ``KeyboardInterrupt`` (not a Ctrl-C of this process)."""


@contextlib.contextmanager
def user_call() -> Iterator[None]:
    """Run the block as a call into the user's code (see the module's docstring)."""
    interrupted: list[bool] = []
    # Only the main thread gets SIGINT (elsewhere a KeyboardInterrupt is the code's own); a handler set
    # outside Python (getsignal gives None) could not be put back, so it is left alone.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if previous is not None:

        def on_sigint(signum, frame):  # a real Ctrl-C: remembered, then handled as before
            interrupted.append(True)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_sigint)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    except (SystemExit, KeyboardInterrupt) as error:
        if interrupted:
            raise
        # Its traceback is the user's: where the code exited.
        raise UserExit(_exit_message(error, out.getvalue() + err.getvalue())).with_traceback(error.__traceback__) \
            from None
    else:  # the user's own output, once it is not part of a failure
        sys.stdout.write(out.getvalue())
        sys.stderr.write(err.getvalue())
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _exit_message(error: BaseException, printed: str) -> str:
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    said = f" after printing {lines[-1][:200]!r}" if lines else ""
    if isinstance(error, KeyboardInterrupt):
        return f"KeyboardInterrupt{said}"
    hint = " (does it parse sys.argv, e.g. with argparse? scalestudy calls it with its own arguments)" \
        if "usage:" in printed or "error:" in printed else ""
    return f"SystemExit({error.code!r}){said}{hint}"


def _library_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    for name in LIBRARIES:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location:
            roots.add(str(Path(location).parent))
    return tuple(sorted(str(Path(root).resolve()) + "/" for root in roots))


def _installed(path: str) -> bool:
    return "/site-packages/" in path or "/dist-packages/" in path


def module_roots(modules: Iterable[str]) -> tuple[str, ...]:
    """The folders (or files) of the user's modules' top-level packages, for the modules imported here."""
    roots = []
    for name in modules:
        top = sys.modules.get(name.partition(".")[0])
        location = getattr(top, "__file__", None)
        if location is None or name.partition(".")[0] in LIBRARIES:
            continue
        path = Path(location).resolve()
        roots.append(str(path.parent) + "/" if hasattr(top, "__path__") else str(path))
    return tuple(roots)


def in_roots(path: str, roots: tuple[str, ...]) -> bool:
    """Whether a file is one of ``roots`` (module files) or under one (package folders, ending in /)."""
    resolved = str(Path(path).resolve())
    return any(resolved == root or (root.endswith("/") and resolved.startswith(root)) for root in roots)


def is_users(path: str, roots: tuple[str, ...] = ()) -> bool:
    """Whether a frame's file is the user's: in ``roots`` (the user's packages, installed or not), or
    neither in the standard library, scalestudy, torch and the like, nor in any installed package."""
    if in_roots(path, roots):
        return True
    resolved = str(Path(path).resolve())
    return not path.startswith("<") and not _installed(resolved) and not resolved.startswith(_library_roots())


def user_frame(tb: TracebackType | None, roots: tuple[str, ...] = ()) -> traceback.FrameSummary | None:
    """The innermost frame of ``tb`` in the user's code, or None."""
    frames = traceback.extract_tb(tb) if tb is not None else []
    return next((frame for frame in reversed(frames) if is_users(frame.filename, roots)), None)


def shown_path(filename: str) -> str:
    """A frame's file for people: relative to the folder it is imported from (``mypkg/models.py``)."""
    path = Path(filename).resolve()
    for entry in sorted((Path(p or ".").resolve() for p in sys.path), key=lambda p: -len(str(p))):
        if entry != Path("/") and path.is_relative_to(entry) and entry.is_dir():
            return str(path.relative_to(entry))
    return str(path)


def located(frame: traceback.FrameSummary | None) -> str:
    """`` (at mypkg/models.py:12)`` for a frame, empty for None."""
    return f" (at {shown_path(frame.filename)}:{frame.lineno})" if frame is not None else ""
