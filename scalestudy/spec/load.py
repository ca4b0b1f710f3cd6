"""Spec files → a validated :class:`StudySpec`: YAML, ``--set`` overrides, one-line errors."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scalestudy.registry import UnknownNameError
from scalestudy.spec.base import Frozen, SpecError
from scalestudy.spec.checks import check_consistency
from scalestudy.spec.schema import Grid, StudySpec
from scalestudy.spec.workload import Schedule, Workload

MAX_SPEC_BYTES = 16 * 2**20
REPO_ROOT = Path(__file__).resolve().parents[2]


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 insists on ``1.0e-3``)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{source}:{where} is not valid YAML: {problem}") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply to be a spec") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides; values are parsed as YAML (``[16, 32]``, ``0.1``)."""
    raw = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecError(f"--set: expected dotted.key=value, got {override!r}")
        value = parse_yaml(text, f"--set {key}")
        node = raw
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise SpecError(f"--set {key}: {'.'.join(parts[: depth + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return raw


def find_search_space(name: str) -> Path:
    """``search_spaces/NAME`` under the working directory, else under the repository."""
    for base in (Path.cwd() / "search_spaces", REPO_ROOT / "search_spaces"):
        if (base / name).is_file():
            return base / name
    raise SpecError(f"cannot find search_spaces/{name} (run from the repository, or pass --spec)")


def load_spec(path: str | Path, overrides: list[str] | None = None) -> StudySpec:
    """Read, override and validate a spec file; raise :class:`SpecError` on any problem."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise SpecError(f"{path}: {'a directory' if path.is_dir() else 'not a regular file'}; "
                            "expected a spec file (YAML)")
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {path.stat().st_size} bytes; a spec is a YAML text file of at most "
                            f"{MAX_SPEC_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as error:
        raise SpecError(f"{path}: cannot read spec ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                        "a spec is a YAML text file") from None
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping with name, workload, grid, ...")
    return spec_from_dict(apply_overrides(raw, overrides or []))


def spec_from_dict(raw: dict[str, Any]) -> StudySpec:
    _check_blocks(raw)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(format_validation_error(error)) from None
    except UnknownNameError as error:
        raise SpecError(str(error)) from None
    check_consistency(spec)
    return spec


def _check_blocks(raw: Any) -> None:
    """Blocks where a mapping belongs get one: ``workload: mnist1d`` names the field, not a merge error."""
    if not isinstance(raw, dict):
        raise SpecError(f"spec: must be a mapping with name, workload, grid, ... (got {_shown(raw)})")
    _check_model_blocks(raw, StudySpec, "")
    _check_schedules(raw.get("schedule"), "schedule")
    sections = raw.get("sections")
    if sections is None:
        return
    if not isinstance(sections, dict):
        raise SpecError(f"sections: must be a mapping of section name to overrides (got {_shown(sections)})")
    for name, override in sections.items():
        if override is None:
            continue
        if not isinstance(override, dict):
            raise SpecError(f"sections.{name}: must be a mapping with workload, grid, schedule (got {_shown(override)})")
        for block, model in (("workload", Workload), ("grid", Grid)):
            value = override.get(block)
            if value is not None and not isinstance(value, dict):
                raise SpecError(f"sections.{name}.{block}: must be a mapping ({_keys(model)}) (got {_shown(value)})")
        _check_schedules(override.get("schedule"), f"sections.{name}.schedule")


def _check_model_blocks(raw: dict[str, Any], model: Any, where: str) -> None:
    for name, info in model.model_fields.items():
        if name not in raw:
            continue
        block = _block_model(info.annotation)
        value = raw[name]
        if block is None or (value is None and not info.is_required() and info.default is None):
            continue
        if not isinstance(value, dict):
            raise SpecError(f"{where}{name}: must be a mapping ({_keys(block)}) (got {_shown(value)})")
        _check_model_blocks(value, block, f"{where}{name}.")


def _block_model(annotation: Any) -> Any:
    """The model of a field that is a model or an optional model (not a list, dict or other union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = [arg for arg in getattr(annotation, "__args__", ()) if arg is not type(None)]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel) \
            and len(getattr(annotation, "__args__", ())) == 2:
        return args[0]
    return None


def _check_schedules(value: Any, where: str) -> None:
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
    if value is not None and items is None:
        raise SpecError(f"{where}: must be a mapping or a list of mappings ({_keys(Schedule)}) (got {_shown(value)})")
    for i, item in enumerate(items or []):
        if not isinstance(item, dict):
            raise SpecError(f"{where}[{i}]: must be a mapping ({_keys(Schedule)}) (got {_shown(item)})")


def _keys(model: Any) -> str:
    return "keys: " + ", ".join(model.model_fields)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" in part or part in {model.__name__ for model in Frozen.__subclasses__()}:
            continue  # a union branch pydantic names by its type ("list[float]", "LinearRuleLR"): not a field
        else:
            text += f".{part}" if text else str(part)
    return text or "spec"


def format_validation_error(error: ValidationError) -> str:
    """The first (most specific) pydantic error as ``field: message (got value)``."""
    errors = error.errors(include_url=False)
    # Prefer errors that are not just "wrong union branch" noise.
    first = min(errors, key=lambda e: (e["type"] in ("model_type", "list_type") and len(errors) > 1, 0))
    message = first["msg"].removeprefix("Value error, ")
    field = _location(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        parent, _, key = field.rpartition(".")
        allowed = _allowed_keys(tuple(first["loc"])[:-1])
        where = f"{parent}: " if parent else ""
        return f"{where}unknown key {key!r}; allowed: {', '.join(allowed)}"
    if first["type"] == "missing":
        return f"{field}: required field is missing"
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) or first["type"] == "value_error" else f" (got {value!r})"
    message = message.rstrip(".")
    if message.startswith("["):
        return f"{field}{message}"
    return f"{field}: {message}{shown}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``loc``; keys of dict fields (section names) are skipped."""
    model: Any = StudySpec
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if isinstance(part, str) and part in fields:
            model = _model_in(fields[part].annotation)
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None

