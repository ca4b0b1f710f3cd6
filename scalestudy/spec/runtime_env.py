"""``resources.runtime_env``: what Ray installs on every worker of the study (Ray's ``runtime_env``).

Passed to ``ray.init`` (merged with scalestudy's own environment variables), so every Tune trial and
every DDP worker of the study gets it. On a local Ray the caller's working directory and
``PYTHONPATH`` already reach the workers; on a cluster, ship the user's code with ``working_dir`` (a
folder, made the workers' working directory and put on their path) or ``py_modules`` (package
folders, wheels or zip files put on their path), and its dependencies with ``pip``.

The driver imports the same code to check the spec, so local ``working_dir`` and ``py_modules``
folders are also put on the driver's own path (:meth:`RuntimeEnv.import_roots`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import field_validator

from scalestudy.spec.base import Frozen


def _is_local(value: str) -> bool:
    return "://" not in value


def _existing(value: str, what: str) -> str:
    if _is_local(value) and not Path(value).expanduser().exists():
        raise ValueError(f"no such {what} {value!r} (a relative path is relative to the working directory "
                         f"{os.getcwd()}); or give a URI (s3://, gs://, https://...zip)")
    return value


class RuntimeEnv(Frozen):
    """The keys of Ray's runtime_env (Ray 2.60) a study may set; Ray documents each."""

    working_dir: str | None = None
    py_modules: list[str] | None = None
    pip: list[str] | str | dict[str, Any] | None = None
    uv: list[str] | str | dict[str, Any] | None = None
    conda: str | dict[str, Any] | None = None
    env_vars: dict[str, str] | None = None
    excludes: list[str] | None = None
    py_executable: str | None = None
    image_uri: str | None = None
    container: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    worker_process_setup_hook: str | None = None

    @field_validator("working_dir")
    @classmethod
    def _working_dir_exists(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _existing(value, "folder")
        path = Path(value).expanduser()
        if _is_local(value) and not path.is_dir() and path.suffix != ".zip":
            # Ray would zip and upload it only after starting: refuse it before anything is created.
            raise ValueError(f"{value!r} is a file; give the folder to ship (or a .zip of one, or a URI)")
        return value

    @field_validator("py_modules")
    @classmethod
    def _modules_exist(cls, values: list[str] | None) -> list[str] | None:
        for i, value in enumerate(values or []):
            try:
                _existing(value, "package folder, wheel or zip")
            except ValueError as error:
                raise ValueError(f"[{i}]: {error}") from None
        return values

    def to_ray(self) -> dict[str, Any]:
        """The dict ``ray.init(runtime_env=...)`` takes (unset keys left out)."""
        return self.model_dump(exclude_none=True)

    def import_roots(self) -> list[str]:
        """Local folders (and zips) the driver imports the shipped code from: the working_dir itself, the
        parent of each package folder or module file in py_modules, each wheel or zip as it is."""
        roots = []
        if self.working_dir is not None and _is_local(self.working_dir):
            roots.append(Path(self.working_dir).expanduser().resolve())
        for value in self.py_modules or []:
            if _is_local(value):
                path = Path(value).expanduser().resolve()
                roots.append(path if path.suffix in (".whl", ".zip") else path.parent)
        return [str(root) for root in roots]
