"""A study's laws: one per (optimizer, section), each in its own file, and the index that lists them.

A spec's sections may train with different optimizers (an SGD section and an AdamW section), and
their ε* follow different laws: ``analyze`` fits one per group, named ``"<optimizer>/<section>"``
(:func:`group_name`, also the ``group`` of each law file; the adaptive search's
``scalestudy.search.cells.law_group`` separates its cells by section and optimizer too).
``law.json`` stays the primary law (the group with the most constant-schedule trials, as before), so
every reader of one law keeps working; beside it ``laws/<optimizer>-<section>.json`` holds each
group's law and ``laws/index.json`` lists them.

Standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from scalestudy.law.records import LawFileError

LAWS_FOLDER = "laws"
INDEX_FILE = "index.json"
INDEX_SCHEMA = "scalestudy.laws/v1"
DEFAULT_OPTIMIZER = "sgd"  # of trials recorded before optimizers were pluggable


def group_name(optimizer: str | None, section: str) -> str:
    """The law group of a section's trials: ``"<optimizer>/<section>"``."""
    return f"{optimizer or DEFAULT_OPTIMIZER}/{section}"


def group_file_name(group: str) -> str:
    """The group's law file in ``laws/``: ``adamw/lm`` → ``adamw-lm.json`` (a user's import path
    ``pkg.mod:Opt`` keeps only characters safe in a file name)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", group.replace("/", "-")) + ".json"


@dataclass(frozen=True)
class IndexedLaw:
    """One law of ``laws/index.json``; ``file`` is relative to the index's folder."""

    group: str
    optimizer: str
    section: str
    file: str
    primary: bool  # the law law.json holds


@dataclass(frozen=True)
class LawIndex:
    laws: tuple[IndexedLaw, ...]

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(law.group for law in self.laws)

    def save(self, path: Path) -> Path:
        rows = [vars(law) for law in self.laws]
        path.write_text(json.dumps({"schema": INDEX_SCHEMA, "laws": rows}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> LawIndex:
        where = f"law index {path}"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise LawFileError(f"{where}: cannot be read ({error})") from None
        if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA:
            raise LawFileError(f"{where}: schema must be {INDEX_SCHEMA!r}")
        try:
            return cls(tuple(IndexedLaw(**row) for row in data["laws"]))
        except (KeyError, TypeError) as error:
            raise LawFileError(f"{where}: malformed entry ({error})") from None


def index_path(law_path: Path) -> Path:
    """Where the index of the study whose law file is ``law_path`` lies (law.json's folder, or laws/ itself)."""
    folder = law_path if law_path.is_dir() else law_path.parent
    return folder / INDEX_FILE if folder.name == LAWS_FOLDER else folder / LAWS_FOLDER / INDEX_FILE


def select_law(law_path: Path, group: str | None) -> Path:
    """The law file to read: ``law_path`` itself without a group; with one, that group's file from the
    study's index (a :class:`LawFileError` naming the groups there when it has none of that name)."""
    if group is None:
        return law_path
    path = index_path(law_path)
    if not path.exists():
        raise LawFileError(f"--group {group}: {law_path} has no {LAWS_FOLDER}/{INDEX_FILE} beside it (a study "
                           "with one law); leave --group out")
    index = LawIndex.load(path)
    for law in index.laws:
        if group in (law.group, law.file, law.file.removesuffix(".json")):
            return path.parent / law.file
    raise LawFileError(f"--group {group}: not a law of this study; allowed: {', '.join(index.groups)}")
