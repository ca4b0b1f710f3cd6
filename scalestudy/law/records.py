"""Typed records in JSON or YAML files, read strictly: the reader of the law file, the plan file and
the check file.

Each record is a frozen dataclass whose fields are the keys of one mapping of the file, in the
file's order. :func:`read_record` turns a parsed mapping into a record, field by field from the
annotations: a number is finite, an interval is ``[low, high]`` with low ≤ high, a whole number is
whole, a list is a list; a key the record does not know, or a required one that is missing, is
an error naming its path (``gradient_noise_scale.iqr``). A field with a default may be absent or
null (files written before it existed still load); one without may not be absent. :func:`to_json`
writes a record back as the same mapping.

Standard library only (and PyYAML for .yaml files).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, NamedTuple


class LawError(ValueError):
    """A law that cannot be read or used; ``str(error)`` is one line."""


class LawFileError(LawError):
    """A missing or malformed law file."""


class Interval(NamedTuple):
    """[low, high]: a 95 % interval, a range. A tuple, so it unpacks and indexes like one."""

    low: float
    high: float


def read_document(path: str | Path, what: str, max_bytes: int, expected: str) -> Any:
    """The parsed content of a JSON file, or YAML for .yaml/.yml (``what``: "law file", "plan file";
    ``expected``: what such a file is, for the message); any problem is one :class:`LawFileError` line."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise LawFileError(f"cannot read {what} {path}: {'a directory' if path.is_dir() else 'not a regular file'}")
        if path.stat().st_size > max_bytes:
            raise LawFileError(f"{what} {path}: {path.stat().st_size} bytes, more than a {what} holds "
                               f"({max_bytes // 2**20} MiB at most)")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise LawFileError(f"cannot read {what} {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise LawFileError(f"{what} {path}: not UTF-8 text (offset {error.start}); expected {expected}") from None
    yaml_file = path.suffix in (".yaml", ".yml")
    try:
        if yaml_file:
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as error:  # noqa: BLE001 - json.JSONDecodeError, yaml.YAMLError
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LawFileError(f"{what} {path}: not valid {'YAML' if yaml_file else 'JSON'} ({first})") from None


def write_document(path: str | Path, data: dict[str, Any]) -> Path:
    """``data`` as JSON, or YAML when the name ends in .yaml/.yml."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


def read_record(cls: type, data: Any, where: str, path: str = "", optional: bool = False) -> Any:
    """The record ``cls`` from a parsed mapping; any problem is one :class:`LawFileError` line."""
    if not isinstance(data, dict):
        raise LawFileError(f"{where}: {path or 'the law'} must be a mapping{' or null' if optional else ''}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    prefix = f"{path}." if path else ""
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        raise LawFileError(f"{where}: unknown key {prefix + unknown[0]!r}")
    values = {}
    for name, spec in fields.items():
        has_default = spec.default is not dataclasses.MISSING or spec.default_factory is not dataclasses.MISSING
        if name not in data:
            if not has_default:
                raise LawFileError(f"{where}: missing key {prefix + name!r}")
            continue
        if data[name] is None and has_default:
            continue  # null: the default (None, an empty list or mapping)
        values[name] = read_value(hints[name], data[name], where, prefix + name)
    return cls(**values)


def read_value(hint: Any, value: Any, where: str, path: str) -> Any:
    """One value of type ``hint`` (a field annotation)."""
    nullable = _is_optional(hint)
    hint = _without_none(hint)
    null = " or null" if nullable else ""
    if value is None:
        if nullable:
            return None
        raise LawFileError(f"{where}: {path} must not be null")
    if hint is Interval:
        return _interval(value, where, path, null)
    if dataclasses.is_dataclass(hint):
        return read_record(hint, value, where, path, optional=nullable)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise LawFileError(f"{where}: {path} must be a list{null}")
        item = typing.get_args(hint)[0]
        return tuple(read_value(item, v, where, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise LawFileError(f"{where}: {path} must be a mapping{null}")
        for key, text in value.items():
            if not isinstance(text, str):
                raise LawFileError(f"{where}: {path}.{key} must be text, got {_short(text)}")
        return {str(key): text for key, text in value.items()}
    if hint is float:
        if not _finite(value):
            raise LawFileError(f"{where}: {path} must be a finite number{null}, got {_short(value)}")
        return value  # int or float as written: a round trip changes nothing
    if hint is int:
        if not _finite(value) or value != int(value):
            raise LawFileError(f"{where}: {path} must be a whole number{null}, got {_short(value)}")
        return int(value)
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise LawFileError(f"{where}: {path} must be {'true or false' if hint is bool else 'text'}{null}, "
                               f"got {_short(value)}")
        return value
    raise TypeError(f"no reader for {hint!r}")  # a record field of a type this module does not know


def to_json(value: Any) -> Any:
    """JSON-safe copy: records to mappings (in field order), tuples to lists, numpy scalars to
    Python, NaN and inf to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (f.metadata.get("omit_if_none") and getattr(value, f.name) is None)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finite(value: Any) -> bool:
    """A finite int or float (not a bool; an int too large for a float is not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _interval(value: Any, where: str, path: str, null: str) -> Interval:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
        raise LawFileError(f"{where}: {path} must be [low, high]{null}, got {_short(value)}")
    if not all(_finite(v) for v in value):
        raise LawFileError(f"{where}: {path} must hold finite numbers, got {_short(list(value))}")
    if value[0] > value[1]:
        raise LawFileError(f"{where}: {path} has low > high: {list(value)!r}")
    return Interval(value[0], value[1])


def _is_optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _without_none(hint: Any) -> Any:
    if not _is_optional(hint):
        return hint
    (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return inner
