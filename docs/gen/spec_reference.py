"""Build-time generator of the spec reference (``spec-reference.md``), read from the pydantic schema.

Written into the site by ``spec_page.py`` (a ``gen-files`` script, ``mkdocs.yml``);
``python docs/gen/spec_reference.py`` prints the page. Every block of a study spec is a frozen pydantic model (:mod:`scalestudy.spec`): starting from
``StudySpec``, each model reachable through its fields' types gets a table of its fields with their
YAML paths, types, defaults, constraints and allowed names (the registries' built-ins), so the page
cannot disagree with what ``scalestudy validate`` accepts.

A field's description is, in order: its ``Field(description=...)``; its entry in ``spec_fields.yaml``
(next to this file: for fields the code does not describe); the comment beside it, or the comment
lines just above it, in the source.
The build fails on a field that has none of them, and on an entry of ``spec_fields.yaml`` that names
no field: a new field must be described, and a removed one leaves no stale text behind.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from scalestudy import data, models, optim, tasks  # noqa: E402
from scalestudy.schedules import SCHEDULES  # noqa: E402
from scalestudy.search import SEARCHES  # noqa: E402
from scalestudy.spec import StudySpec  # noqa: E402

NOTES = HERE / "spec_fields.yaml"
# Fields whose value is a registry name: their allowed names are the registry's built-ins (an import
# path package.module:attribute is accepted too where the registry takes the user's code).
REGISTRIES = {
    ("Workload", "dataset"): data.DATASETS,
    ("Workload", "model"): models.MODELS,
    ("Workload", "task"): tasks.TASKS,
    ("Optimizer", "name"): optim.OPTIMIZERS,
    ("Schedule", "kind"): SCHEDULES,
    ("Search", "algorithm"): SEARCHES,
}


def reachable_models(root: type[BaseModel]) -> dict[type[BaseModel], list[str]]:
    """Every model reachable from ``root`` through field types, in breadth-first order, with every YAML
    path it sits at (``[]``: an item of a list, ``NAME``: a key of a mapping)."""
    order = [root]
    for model in order:  # grows while it is walked: breadth first
        for field in model.model_fields.values():
            order += [nested for nested in _models_in(field.annotation) if nested not in order]
    paths: dict[type[BaseModel], list[str]] = {model: [] for model in order}
    paths[root].append("")

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            suffix = {"dict": ".NAME", "list": "[]"}.get(_container(field.annotation), "")
            path = f"{prefix}.{name}{suffix}" if prefix else f"{name}{suffix}"
            for nested in _models_in(field.annotation):
                if path not in paths[nested]:
                    paths[nested].append(path)
                    walk(nested, path)

    walk(root, "")
    return paths


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += [m for m in _models_in(arg) if m not in out]
    return out


def _container(annotation: Any) -> str | None:
    """``list`` or ``dict`` when the field holds models inside a list or a mapping."""
    for arg in [annotation, *typing.get_args(annotation)]:
        origin = typing.get_origin(arg)
        if origin in (list, dict) and _models_in(arg):
            return origin.__name__
    return None


def type_text(annotation: Any) -> str:
    """A field's type as a reader of YAML sees it (models link to their section)."""
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = sorted(typing.get_args(annotation), key=lambda a: a is type(None))
        return " \\| ".join(type_text(a) for a in args)
    if origin is typing.Literal:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in typing.get_args(annotation))
    if origin is list:
        return f"list[{type_text(typing.get_args(annotation)[0])}]"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"mapping[{type_text(key)}, {type_text(value)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def default_text(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, list) and value and all(isinstance(item, BaseModel) for item in value):
        return f"one {type(value[0]).__name__} with its defaults" if len(value) == 1 else "models with defaults"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def constraint_text(field: Any) -> str:
    lengths = {getattr(item, attr) for item in field.metadata for attr in ("min_length", "max_length")
               if getattr(item, attr, None) is not None}
    if len(lengths) == 1 and len([i for i in field.metadata if hasattr(i, "min_length") or hasattr(i, "max_length")]) == 2:
        return f"exactly {lengths.pop()} items"
    words = []
    for item in field.metadata:
        for attr, template in (("gt", "> {}"), ("ge", "≥ {}"), ("lt", "< {}"), ("le", "≤ {}"),
                               ("min_length", "at least {} items"), ("max_length", "at most {} items"),
                               ("pattern", "matches `{}`")):
            value = getattr(item, attr, None)
            if value is not None:
                if attr.endswith("length") and field.annotation is str or (
                        attr.endswith("length") and typing.get_args(field.annotation)[:1] == (str,)):
                    template = template.replace("items", "characters")
                words.append("not empty" if template == "at least {} items" and value == 1 else template.format(value))
    return ", ".join(words)


def source_comments(model: type[BaseModel]) -> dict[str, str]:
    """The comment beside each field of ``model``, or the comment lines just above it."""
    lines, start = inspect.getsourcelines(model)
    source = textwrap.dedent("".join(lines))
    body = ast.parse(source).body[0]
    text = source.splitlines()
    out = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        row = node.lineno - 2
        while row >= 0 and text[row].strip().startswith("#"):
            above.insert(0, text[row].strip().lstrip("#").strip())
            row -= 1
        beside = _trailing_comment(text[node.end_lineno - 1])
        out[node.target.id] = " ".join(part for part in (" ".join(above), beside) if part)
    return out


def _trailing_comment(line: str) -> str:
    # The first # outside a string literal.
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[i + 1:].strip()
    return ""


def registry_text(registry: Any) -> str:
    names = sorted(name for name in registry.names() if registry.is_builtin(name))
    return "one of " + ", ".join(f"`{name}`" for name in names)


def render() -> str:
    notes = yaml.safe_load(NOTES.read_text()) or {}
    models_found = reachable_models(StudySpec)
    by_name = {model.__name__: model for model in models_found}
    stale = [f"{model}.{name}" for model, fields in notes.items() for name in fields
             if model not in by_name or name not in by_name[model].model_fields]
    if stale:
        raise SystemExit(f"{NOTES.name}: no such spec field: {', '.join(stale)}")
    missing_registries = [f"{m}.{f}" for m, f in REGISTRIES if m not in by_name or f not in by_name[m].model_fields]
    if missing_registries:
        raise SystemExit(f"{Path(__file__).name}: REGISTRIES names no such field: {', '.join(missing_registries)}")

    out = ["# Spec reference", "",
           "<!-- Generated at build time from the pydantic schema by docs/gen/spec_reference.py: do not edit. -->",
           "",
           "Every block of a study spec, read from the schema that `scalestudy validate` applies "
           "(`scalestudy/spec/`). Every model is strict and frozen: an unknown key is an error, and values are "
           "not coerced (`\"5\"` is not `5`). A field's *path* is where it goes in the YAML file; `NAME` is a "
           "key you choose (a section's name), `[]` an item of a list. Checks across fields (every epoch of "
           "every schedule against the ghost batch, the workers and the dataset size; the user's code) come "
           "after these, in `scalestudy/spec/checks.py`: see [Every input and its error](errors.md) and "
           "the [study spec guide](spec.md).", ""]
    undocumented = []
    for model, paths in models_found.items():
        name = model.__name__
        out += [f"## {name}", ""]
        where = ", ".join(f"`{p}`" for p in paths if p) or "the top level of the file"
        out += [f"Path: {where}.", ""]
        doc = inspect.getdoc(model)
        if doc and doc != inspect.getdoc(BaseModel) and model.__doc__ is not None and "__doc__" in vars(model):
            out += [_rst_to_markdown(doc), ""]
        comments = source_comments(model)
        out += ["| field | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
        for field_name, field in model.model_fields.items():
            description = field.description or notes.get(name, {}).get(field_name) or comments.get(field_name, "")
            if not description:
                undocumented.append(f"{name}.{field_name}")
            constraints = constraint_text(field)
            registry = REGISTRIES.get((name, field_name))
            if registry is not None:
                constraints = ", ".join(filter(None, [constraints, registry_text(registry)]))
                if registry.import_paths:
                    constraints += ", or an import path `package.module:attribute`"
            out.append(f"| `{field_name}` | {type_text(field.annotation)} | {default_text(field)} | "
                       f"{constraints or '—'} | {_cell(description)} |")
        out.append("")
    if undocumented:
        raise SystemExit(f"spec fields without a description (add a comment beside the field, a "
                         f"Field(description=...), or an entry in {NOTES.name}): {', '.join(undocumented)}")
    return "\n".join(out) + "\n"


def _rst_to_markdown(text: str) -> str:
    text = re.sub(r":(?:mod|func|class|meth|attr|data):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _cell(text: str) -> str:
    text = _rst_to_markdown(text).replace("|", "\\|").replace("\n", " ").strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", ")")) else text + "."


if __name__ == "__main__":
    print(render())
