"""Name → builder registries with lazy imports, import paths and entry points.

Entries are ``"package.module:attribute"`` strings, so listing or validating names
(``scalestudy validate``) never imports torch; the module is imported only when a
builder is actually used.

A registry of the user's workloads (models, datasets, tasks, optimizers) also accepts, where a
name is expected:

* an import path ``package.module:attribute`` (``attribute`` may be dotted: ``module:Class.build``),
  imported when it is first used (:meth:`Registry.get`) and again in every Ray worker;
* a name registered at run time (``scalestudy.register_model(name, builder)``);
* a name an installed package declares in the registry's entry-point group (e.g.
  ``[project.entry-points."scalestudy.models"] tiny_cnn = "mypkg.models:build"``), read once, on
  the first look-up, without importing the package.

A Ray worker is a fresh process that knows only the built-in names (and entry points only where the
distribution is installed), so a trial carries the *portable* form of a name (:meth:`Registry.portable`):
the name itself for built-ins, the import path for everything else (it works wherever the module can be
imported, shipped by ``resources.runtime_env`` or installed).
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ConfigDict

from scalestudy.usercode import UserExit, located, module_roots, user_call, user_frame

IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class UnknownNameError(ValueError):
    """A spec names something that no registry knows."""


class ImportPathError(ValueError):
    """The user's code cannot be imported or called as the contract says; ``str(error)`` is one line
    without the spec field (the caller names it)."""


class ContractError(ValueError):
    """The user's code does not keep its contract (a signature, a return value); ``field`` says which
    part of the spec is at fault: ``"code"`` (the model, dataset, optimizer itself) or ``"options"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self):
        # Copied and pickled with both arguments: Ray copies a trial's exception (copy.copy) and ships it
        # between processes; the default (cls, args) would call __init__ without the field.
        return type(self), (self.field, str(self))


class DataError(ContractError):
    """The user's data itself is wrong (a non-finite input), not the code: named with the example's index
    (``scalestudy.data.inspect``, and the epoch loop inside a trial)."""

    def __init__(self, message: str) -> None:
        super().__init__("code", message)

    def __reduce__(self):
        return type(self), (str(self),)


class UserOptions(BaseModel):
    """Options of the user's own model, dataset or optimizer: free-form (no schema), passed to it as
    keyword arguments; a keyword it does not take is an error when it is first called."""

    model_config = ConfigDict(extra="allow", frozen=True)


def is_import_path(name: str) -> bool:
    return bool(IMPORT_PATH.match(name))


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


def resolve_import_path(path: str, contract: str | None = None) -> Callable[..., Any]:
    """The callable at ``package.module:attribute``; :class:`ImportPathError` (one line) if the module
    cannot be imported, lacks the attribute, or the attribute is not callable."""
    if not is_import_path(path):
        raise ImportPathError(f"{path!r} is not an import path (package.module:attribute)")
    module_name, _, qualname = path.partition(":")
    try:
        with user_call():  # a module that parses sys.argv or exits when imported is an error like any other
            target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportPathError(f"cannot import {module_name!r} ({_first_line(error)})") from None
    except Exception as error:  # noqa: BLE001 - the user's module failed while importing
        raise ImportPathError(f"importing {module_name!r} raised {failure_text(error)}") from None
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportPathError(f"module {module_name!r} has no attribute {qualname!r}") from None
    if not callable(target):
        expected = f"; expected {contract}" if contract else ""
        raise ImportPathError(f"{path!r} is a {type(target).__name__}, not callable{expected}")
    return target


def call_user_code(function: Callable[..., Any], what: str, args: tuple, options: Mapping[str, Any]) -> Any:
    """``function(*args, **options)``: options its signature does not take are a :class:`ContractError`
    on ``"options"``, anything it raises one on ``"code"`` (``what`` names the call in the message)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # no signature to inspect (a builtin): let the call say
        signature = None
    if signature is not None:
        try:
            signature.bind_partial(*args)
        except TypeError as error:
            raise ContractError("code", f"{what}: its signature {signature} does not take the contract's "
                                        f"{len(args)} positional arguments ({_first_line(error)})") from None
        try:
            signature.bind(*args, **options)
        except TypeError as error:
            raise ContractError("options", f"{what}: {_first_line(error)}") from None
    try:
        with user_call():
            return function(*args, **options)
    except Exception as error:  # noqa: BLE001 - the user's code failed: one line naming the call
        raise ContractError("code", f"{what} raised {failure_text(error, (function,))}") from None


def failure_text(error: BaseException, code: tuple[Any, ...] = ()) -> str:
    """``Type: first line (at mypkg/models.py:12)``: an exception of the user's code (``code``: the objects
    called, whose packages are the user's even when installed), located at its innermost frame there."""
    roots = module_roots(getattr(target, "__module__", None) or "" for target in code)
    kind = "" if isinstance(error, UserExit) else f"{type(error).__name__}: "
    return f"{kind}{_first_line(error)}{located(user_frame(error.__traceback__, roots))}"


class Registry:
    """A small registry: ``name -> "module:attribute"`` resolved on first use.

    ``import_paths``: also accept ``package.module:attribute`` where a name is expected (the user's
    workloads). ``entry_points``: the entry-point group whose entries register names (read once).
    ``contract``: how an entry is called, for error messages.
    """

    def __init__(self, kind: str, entries: Mapping[str, str] | None = None, *, import_paths: bool = False,
                 entry_points: str | None = None, contract: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str | Callable[..., Any]] = dict(entries or {})
        self._builtin = frozenset(self._entries)
        self._paths: dict[str, str] = {}  # name → the import path of a name registered with a callable
        self._resolved: dict[str, Callable[..., Any]] = {}
        self.import_paths = import_paths
        self.entry_point_group = entry_points
        self.contract = contract
        self._entry_points_read = entry_points is None

    # -- registering ---------------------------------------------------------------------------
    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        """Register ``name`` for ``target``: an import path (imported on first use) or a callable
        (which Ray workers import by its module and qualified name: define it at a module's top level)."""
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"{self.kind} name must be a non-empty string without ':', got {name!r}")
        self._read_entry_points()
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if isinstance(target, str):
            if not is_import_path(target):
                raise ValueError(f"{self.kind} {name!r}: {target!r} is not an import path (package.module:attribute)")
        elif not callable(target):
            raise ValueError(f"{self.kind} {name!r}: expected a callable or an import path, got "
                             f"{type(target).__name__}")
        self._entries[name] = target

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.entry_point_group):
            value = point.value.split("[", 1)[0].strip()  # drop extras: "mod:attr [extra]"
            if point.name in self._entries or not is_import_path(value):
                warnings.warn(f"entry point {point.name} = {point.value!r} in group {self.entry_point_group!r} "
                              f"ignored: {'the name is taken' if point.name in self._entries else 'not module:attr'}",
                              stacklevel=3)
                continue
            self._entries[point.name] = value

    # -- looking up ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        self._read_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._read_entry_points()
        return name in self._entries

    def is_builtin(self, name: str) -> bool:
        """A name scalestudy ships (typed options, its own calling convention)."""
        return name in self._builtin

    def check(self, name: str) -> str:
        """Return ``name`` if known (or, where allowed, a well-formed import path), else raise a
        one-line error listing the known names. Never imports the user's code."""
        if name in self or (self.import_paths and is_import_path(name)):
            return name
        hint = "; or an import path package.module:attribute" if self.import_paths else ""
        if self.import_paths and ":" in name:
            raise UnknownNameError(f"{self.kind} {name!r} is not an import path (package.module:attribute, "
                                   "each part a Python identifier)")
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}{hint}")

    def get(self, name: str) -> Callable[..., Any]:
        """The builder of ``name``, imported on first use (:class:`ImportPathError` for the user's code
        that cannot be imported)."""
        if name in self._resolved:
            return self._resolved[name]
        target = self._entries[name] if name in self else self.check(name)
        if isinstance(target, str):
            target = resolve_import_path(target, self.contract) if not self.is_builtin(name) else \
                _import_builtin(target)
        self._resolved[name] = target
        return target

    def portable(self, name: str) -> str:
        """How a fresh process (a Ray worker) finds ``name``: a built-in name as it is, anything else as its
        import path (a name registered at run time or by an entry point: what it was registered for)."""
        self.check(name)
        if name not in self._entries or self.is_builtin(name):
            return name
        target = self._entries[name]
        if isinstance(target, str):
            return target
        if name not in self._paths:
            self._paths[name] = _import_path_of(target, f"{self.kind} {name!r}")
        return self._paths[name]


def _import_builtin(target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _import_path_of(target: Callable[..., Any], what: str) -> str:
    """``module:qualname`` of a callable that importing by that path gives back, else a one-line error."""
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    problem = None
    if not module or not qualname or "<" in qualname:
        problem = "a lambda or a nested function has no import path"
    elif module == "__main__":
        problem = "it is defined in the script being run (__main__), which Ray workers do not import"
    else:
        path = f"{module}:{qualname}"
        try:
            found = resolve_import_path(path)
        except ImportPathError as error:
            problem = str(error)
        else:
            if found is target:
                return path
            problem = f"{path} is another object"
    raise ImportPathError(f"{what} was registered with {target!r}, which Ray workers cannot import ({problem}); "
                          "define it at the top level of a module on their path, or name it by import path")
