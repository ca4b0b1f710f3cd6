"""The command line run in this process: (exit code, stdout, stderr) of ``scalestudy ARGV``."""

import contextlib
import io

from scalestudy import cli


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()
