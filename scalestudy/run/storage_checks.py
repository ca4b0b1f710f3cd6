"""Checks that Tune's storage can be used, before a study writes there (``run``) or reads it back
(``sync``, ``interpolate``); each bounded in time, each failure one line naming the flag."""

from __future__ import annotations

import uuid
from pathlib import Path

from scalestudy.endpoints import EndpointTimeout, StudyError, bounded, check_writable_folder, first_line
from scalestudy.run.storage import storage_filesystem


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


def _storage_error(flag: str, storage_path: str, error: BaseException, what: str) -> StudyError:
    if "Unrecognized filesystem type" in str(error):
        scheme = storage_path.split("://", 1)[0]
        return StudyError(f"{flag} {storage_path}: unsupported scheme {scheme!r}; use a folder or s3://, gs://, "
                          "hdfs://, abfs://")
    return StudyError(f"{flag} {storage_path}: {what} ({first_line(error)})")


def check_shared_storage(storage_path: str, explicit: bool) -> None:
    """On a cluster of several Ray nodes, Tune's storage must be given and visible from every node
    (a marker written here is read back on each node). Needs a connected Ray."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) <= 1:
        return
    if not explicit:
        raise StudyError(f"--storage: required on a cluster of {len(nodes)} nodes "
                         "(a shared filesystem path or s3://bucket/prefix)")
    fs, root = storage_filesystem(storage_path)
    marker = f"{root}/.scalestudy-check-{uuid.uuid4().hex}"
    try:
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(marker) as out:
            out.write(b"ok")
    except OSError as error:
        raise StudyError(f"--storage {storage_path}: cannot write ({error})") from None

    @ray.remote(num_cpus=0)
    def visible(path: str, uri: str) -> bool:
        try:
            node_fs, _ = storage_filesystem(uri)
            with node_fs.open_input_stream(path) as stream:
                return stream.read() == b"ok"
        except OSError:
            return False

    try:
        seen = ray.get([visible.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                        .remote(marker, storage_path) for n in nodes], timeout=120)
    finally:
        fs.delete_file(marker)
    if not all(seen):
        raise StudyError(f"--storage {storage_path}: not visible from {seen.count(False)} of {len(nodes)} nodes; "
                         "use a shared filesystem or an object store (s3://...)")
