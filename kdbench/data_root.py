"""Where dataset files and caches live, and the checksum check every loader goes through.

Loaders read canonical upstream files from the data root and never download at run
time; ``kdbench data fetch NAME`` is the one place that may use the network. Every file a
loader is handed is remembered with its digest (``files_read``), so a trained teacher's
checkpoint can record the data it was trained on, and a file changed since makes it stale.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kdbench.errors import DatasetMissingError

_verified: dict[tuple[str, int, int, int], str] = {}
_read: dict[str, str] = {}
"""SHA-256 of every dataset file handed to a loader in this process, by ``<dataset>/<relative path>``."""


def data_root() -> Path:
    """The data root: ``KDBENCH_DATA``, else ``~/.cache/kdbench/data``."""
    return Path(os.environ.get("KDBENCH_DATA", Path.home() / ".cache" / "kdbench" / "data"))


def cache_dir() -> Path:
    """Writable cache for teachers, teacher outputs and processed data (``KDBENCH_CACHE``)."""
    path = Path(os.environ.get("KDBENCH_CACHE", Path.home() / ".cache" / "kdbench" / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime, inode) so a run checks each file once (and a
    file replaced in place, even within the same second, is checked again)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _verified:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def dataset_file(dataset: str, relative: str, sha256: str | None) -> Path:
    """Path of one canonical file of ``dataset``, checked against its SHA-256 (when one is given) and
    remembered with it in ``files_read``.

    A missing or corrupt file raises a one-line error that names the file, where it was
    looked for and how to get it.
    """
    path = data_root() / dataset / relative
    if not path.is_file():
        raise DatasetMissingError(
            f"dataset '{dataset}': file {relative} not found at {path} "
            f"(put the canonical file there, set KDBENCH_DATA, or run 'kdbench data fetch {dataset}')"
        )
    actual = sha256_of(path)
    if sha256 is not None and actual != sha256:
        raise DatasetMissingError(
            f"dataset '{dataset}': file {path} is corrupt (sha256 {actual[:12]}…, "
            f"expected {sha256[:12]}…); replace it with the canonical file"
        )
    _read[f"{dataset}/{relative}"] = actual
    return path


def files_read() -> dict[str, str]:
    """The dataset files this process has handed to loaders, as ``<dataset>/<relative path>`` → SHA-256.

    Named relative to the data root, so that a checkpoint written on one machine is checked against
    the same files on another whatever their ``KDBENCH_DATA``.
    """
    return dict(_read)
