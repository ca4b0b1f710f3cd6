"""Tune's storage: ``--storage`` checked (a probe written and removed) before Tune writes."""

from __future__ import annotations

import uuid
from pathlib import Path

from scalestudy.endpoints.base import EndpointTimeout, StudyError, bounded, first_line, writable_dir_problem


def storage_filesystem(storage_path: str):
    """(pyarrow filesystem, path inside it) of a local folder or a URI such as s3://bucket/prefix."""
    import pyarrow.fs

    if "://" in storage_path:
        return pyarrow.fs.FileSystem.from_uri(storage_path)
    return pyarrow.fs.LocalFileSystem(), storage_path


def check_storage(storage_path: str, flag: str, timeout_s: float) -> None:
    """Tune can write under ``storage_path``: a probe file is written and removed, and so is any
    folder the probe had to create."""
    if not storage_path.strip():
        raise StudyError(f"{flag}: must not be empty (a folder, or a URI such as s3://bucket/prefix)")
    if "://" not in storage_path:
        check_writable_folder(Path(storage_path), flag)
        return

    def probe() -> None:
        fs, root = storage_filesystem(storage_path)  # an object store may look up its region: bounded too
        marker = f"{root.rstrip('/')}/.scalestudy-write-check-{uuid.uuid4().hex}"
        with fs.open_output_stream(marker) as out:
            out.write(b"ok")
        fs.delete_file(marker)

    try:
        bounded(probe, timeout_s)
    except EndpointTimeout:
        raise StudyError(f"{flag} {storage_path}: no answer within {timeout_s:g} s") from None
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad URIs and stores
        raise _storage_error(flag, storage_path, error, "cannot write there") from None


def _storage_error(flag: str, storage_path: str, error: BaseException, what: str) -> StudyError:
    if "Unrecognized filesystem type" in str(error):
        scheme = storage_path.split("://", 1)[0]
        return StudyError(f"{flag} {storage_path}: unsupported scheme {scheme!r}; use a folder or s3://, gs://, "
                          "hdfs://, abfs://")
    return StudyError(f"{flag} {storage_path}: {what} ({first_line(error)})")


def check_readable_storage(storage_path: str, flag: str, timeout_s: float) -> None:
    """For commands that read a study's storage (sync, interpolate): it exists and can be listed."""
    if not storage_path.strip():
        raise StudyError(f"{flag}: must not be empty (a folder, or a URI such as s3://bucket/prefix)")
    if "://" not in storage_path:
        if not Path(storage_path).is_dir():
            raise StudyError(f"{flag} {storage_path}: no such folder")
        return

    def listing() -> None:
        import pyarrow.fs

        fs, root = storage_filesystem(storage_path)
        fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))

    try:
        bounded(listing, timeout_s)
    except EndpointTimeout:
        raise StudyError(f"{flag} {storage_path}: no answer within {timeout_s:g} s") from None
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for bad URIs and stores
        raise _storage_error(flag, storage_path, error, "cannot read it") from None


def check_writable_folder(path: Path, flag: str) -> None:
    """Files can be written in the folder ``path`` (made, probed and removed again if it is missing)."""
    missing = []
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise StudyError(f"{flag} {path}: {existing} is a broken link")
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise StudyError(f"{flag} {path}: {existing} is not a directory")
    try:
        for folder in reversed(missing):
            folder.mkdir()
        problem = writable_dir_problem(path)
    except OSError as error:
        problem = error.strerror or first_line(error)
    finally:
        for folder in missing:  # deepest first: leave the tree as it was
            try:
                folder.rmdir()
            except OSError:
                pass
    if problem:
        raise StudyError(f"{flag} {path}: cannot write there ({problem})")


