"""A byte-level text corpus from files, and how it is cut into sequences (no torch).

The corpus is the bytes of the files, concatenated in sorted order and cut at ``max_bytes``;
the same files give the same corpus on every machine, and its sha256 (``corpus_hash``) is
logged with every trial. By default the files are the standard library's own top-level
``*.py`` sources (``sysconfig.get_paths()["stdlib"]``: every Python installation has them, no
download; site-packages is a subfolder and is not read): about 4.7 MB on CPython 3.11, and
different Python versions give different corpora (the hash says which).

The last ``test_fraction`` of the corpus is the test split (a contiguous tail: no sequence
straddles the two), the rest the training split. A split of n bytes holds (n − 1) // L
sequences of L = ``seq_len`` tokens: sequence i is bytes [i·L, (i+1)·L) and its targets are the
same window shifted by one byte.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

VOCABULARY = 256  # bytes


def default_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(paths: list[str] | None, pattern: str | None) -> list[Path]:
    """The corpus' files in order: each path a file, or a folder's files matching ``pattern``
    (``Path.glob``; default ``**/*``: every file under it), sorted by their path under it.
    No paths: the standard library's top-level ``*.py`` files."""
    if paths is None:
        paths, pattern = [str(default_root())], pattern or "*.py"
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted((p for p in path.glob(pattern or "**/*") if p.is_file()),
                                key=lambda p: p.relative_to(path).as_posix()))
        else:
            raise ValueError(f"paths: {raw} is neither a file nor a folder")
    if not files:
        raise ValueError(f"paths: no file{'' if pattern is None else f' matching {pattern!r}'} in {paths}")
    return files


def corpus_size(files: list[Path], max_bytes: int) -> int:
    """Bytes the corpus holds, from the files' sizes (nothing read)."""
    return min(sum(os.path.getsize(f) for f in files), max_bytes)


def read_corpus(files: list[Path], max_bytes: int) -> bytes:
    """The files' bytes, concatenated, cut at ``max_bytes``."""
    parts, left = [], max_bytes
    for path in files:
        if left <= 0:
            break
        with open(path, "rb") as handle:
            chunk = handle.read(left)
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def corpus_hash(corpus: bytes) -> str:
    return hashlib.sha256(corpus).hexdigest()


@dataclass(frozen=True)
class Layout:
    """Where the two splits lie in a corpus of ``total`` bytes, and how many sequences each holds."""

    total: int
    seq_len: int
    test_fraction: float

    @property
    def test_bytes(self) -> int:
        return int(round(self.total * self.test_fraction))

    @property
    def train_bytes(self) -> int:
        return self.total - self.test_bytes

    @property
    def train_sequences(self) -> int:
        return max(0, (self.train_bytes - 1) // self.seq_len)

    @property
    def test_sequences(self) -> int:
        return max(0, (self.test_bytes - 1) // self.seq_len)
