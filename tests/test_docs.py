"""The front door: a short README, links that lead somewhere, and a docs site that builds under
``--strict`` (every page, the spec reference generated from the schema, the API reference generated
by walking the package)."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 250
# [text](target) and ![alt](target), a target up to a space or ")"; reference-style links are not used.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(markdown: str) -> list[str]:
    """The relative targets of the Markdown links outside code (fenced blocks and inline code)."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = [target.split("#", 1)[0] for target in LINK.findall(text)]
    return [t for t in targets if t and not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def generated_page_exists(page: Path) -> bool:
    """Pages the build generates (docs/gen/): the spec reference, and one API page per public module."""
    relative = page.relative_to(DOCS).as_posix()
    if relative == "spec-reference.md":
        return True
    if relative.startswith("api/"):
        parts = Path(relative).with_suffix("").parts[1:]
        if parts[-1] == "index":
            return (REPO.joinpath(*parts[:-1]) / "__init__.py").is_file()
        return REPO.joinpath(*parts).with_suffix(".py").is_file()
    return False


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("source", ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in DOCS.rglob("*.md"))])
def test_relative_links_point_to_files(source):
    path = REPO / source
    broken = []
    for target in relative_links(path.read_text()):
        resolved = (path.parent / target).resolve()
        inside_docs = resolved.is_relative_to(DOCS)
        if not (resolved.exists() or (inside_docs and generated_page_exists(resolved))):
            broken.append(target)
    assert not broken, f"{source} links to missing files: {broken}"


def test_the_link_check_sees_a_broken_link():
    # The check above would pass vacuously if it found no links.
    assert relative_links("[a](docs/x.md#y) ![f](assets/f.png) `[c](no.md)` [w](https://e.org) [s](#here)") == [
        "docs/x.md", "assets/f.png"]
    assert generated_page_exists(DOCS / "api" / "scalestudy" / "spec" / "schema.md")
    assert not generated_page_exists(DOCS / "api" / "scalestudy" / "no_such_module.md")


def test_ci_runs_exactly_the_readme_test_command():
    readme, ci = (REPO / "README.md").read_text(), (REPO / ".ci" / "run").read_text()
    command = 'python3 -m pip install -q -e ".[test]" && python3 -m pytest -q'
    assert command in readme and command in ci.splitlines()


def test_the_test_extra_installs_the_docs_extra():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["docs"]) <= set(extras["test"])
    assert set(extras["hf"]) <= set(extras["test"])  # tests/law/test_hf.py trains with a real Trainer


def test_the_spec_reference_covers_every_field():
    sys.path.insert(0, str(DOCS / "gen"))
    try:
        import spec_reference
    finally:
        sys.path.pop(0)
    from scalestudy.spec import Grid, Search, StudySpec

    page = spec_reference.render()
    for model in (StudySpec, Grid, Search):
        assert f"## {model.__name__}" in page
        for name in model.model_fields:
            assert f"| `{name}` |" in page
    assert "one of `adaptive`, `bracket`, `grid`, `optuna`, `quasi_random`" in page  # the registry's names


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing snippet, a module mkdocstrings cannot
    render or a spec field without a description fails it."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO), "DISABLE_MKDOCS_2_WARNING": "true",
                                 "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    site = tmp_path / "site"
    assert (site / "spec-reference" / "index.html").is_file()
    assert (site / "api" / "scalestudy" / "spec" / "schema" / "index.html").is_file()
    assert "ScalingLaw" in (site / "api" / "scalestudy" / "law" / "scaling" / "index.html").read_text()
