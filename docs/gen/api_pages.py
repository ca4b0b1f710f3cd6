"""Build-time generator of the API reference: one page per public module, found by walking the package.

Run by the ``gen-files`` plugin (``mkdocs.yml``). Modules are found on disk, never listed by hand, so
a module moved between folders moves in the reference too; a private module (a name that starts
with ``_``, other than ``__init__``) is left out, with everything below it.
"""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "scalestudy"

nav = mkdocs_gen_files.Nav()
for path in sorted(PACKAGE.rglob("*.py")):
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = parts[-1] == "__init__"
    if package:
        parts = parts[:-1]
    if any(part.startswith("_") for part in parts):
        continue
    # A package's page is its folder's index (api/scalestudy/index.md), a module's its own file.
    page = Path("api", *parts, "index.md") if package else Path("api", *parts).with_suffix(".md")
    nav[parts] = page.relative_to("api").as_posix()
    with mkdocs_gen_files.open(page, "w") as out:
        out.write(f"::: {'.'.join(parts)}\n")
    mkdocs_gen_files.set_edit_path(page, path.relative_to(ROOT))

with mkdocs_gen_files.open("api/SUMMARY.md", "w") as out:
    out.writelines(nav.build_literate_nav())
