"""The ``gen-files`` script that writes ``spec-reference.md`` into the site (``mkdocs.yml``); the page
itself is rendered by :func:`spec_reference.render`, next to this file."""

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spec_reference import render  # noqa: E402

PAGE = "spec-reference.md"

with mkdocs_gen_files.open(PAGE, "w") as page:
    page.write(render())
mkdocs_gen_files.set_edit_path(PAGE, "docs/gen/spec_reference.py")
