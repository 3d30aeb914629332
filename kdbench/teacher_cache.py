"""Trained teachers on disk, keyed by the content hash of what produced them.

A teacher is trained once per (task and its options, architecture, seed, recipe) and
reused by every method and every later invocation; a student run that others start from
(a case's ``init``) keeps its weights here the same way. Writes are atomic (temporary
file, fsync, rename), so a killed run never leaves a partial checkpoint behind, and
the temporary file a killed writer left is removed by the next cache opened on that
host; a disk that fills up mid-write is a ``DiskFullError`` naming the checkpoint, and
leaves nothing behind either. Loading uses ``weights_only=True``.

A checkpoint is torch's own zip archive of the state dict with one more record,
``kdbench.json``, written in the same atomic write: the SHA-256 of every dataset file the
process had read (``kdbench.data_root.files_read``, the teacher's own among them) and the
curves its training logged. An entry whose recorded file now reads with another digest was
trained on other data: it is stale, not found, and its run trains the teacher again. Only
files this process read too are compared (one it never read belongs to a task not built
here). A run that finds its teacher cached — a teacher killed after its save, before its run
was recorded — logs those curves as its own. Checkpoints from before the record load as before.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdbench.data_root import files_read
from kdbench.errors import DiskFullError, UserError, out_of_space
from kdbench.pids import alive

_HOST = socket.gethostname().replace(".", "-")
RECORD = "kdbench.json"
"""The checkpoint archive's record of what its weights were trained on and what the training logged."""
Curves = Sequence[tuple[int | None, dict[str, float]]]
"""What a training logged, in order: (step, metrics) per call (``None``: no step)."""


class TeacherCache:
    def __init__(self, root: Path) -> None:
        self.root = root / "teachers"
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Delete temporary files whose writer, a process on this host, is gone (killed mid-write).

        Temporary names carry host and PID, so a live writer's file (another worker, another
        host sharing the folder) is never touched.
        """
        for temporary in self.root.glob(".*.tmp"):
            parts = temporary.name.split(".")  # '', key, host, pid, random, 'tmp'
            if len(parts) == 6 and parts[2] == _HOST and parts[3].isdigit() and not alive(int(parts[3])):
                temporary.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def has(self, key: str) -> bool:
        """Whether ``key`` has a checkpoint here that was trained on the data this process reads."""
        path = self.path(key)
        if not path.is_file():
            return False
        read = files_read()
        return all(read.get(name, digest) == digest for name, digest in _record(path).get("data", {}).items())

    def curves(self, key: str) -> list[tuple[int | None, dict[str, float]]]:
        """The curves the checkpoint's training logged, in order; none for a checkpoint from before they were kept."""
        return [(step, metrics) for step, metrics in _record(self.path(key)).get("curves", [])]

    def load(self, key: str, model: nn.Module) -> nn.Module:
        path = self.path(key)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as error:
            raise UserError(
                f"teacher checkpoint {path} is corrupt ({type(error).__name__}); delete it to retrain"
            ) from None
        return model.eval()

    def save(self, key: str, model: nn.Module, curves: Curves = ()) -> Path:
        """Write ``model``'s weights with the data digests and ``curves`` (see the module's docstring)."""
        path = self.path(key)
        record = json.dumps({"data": files_read(), "curves": [[step, metrics] for step, metrics in curves]})
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{key}.{_HOST}.{os.getpid()}.",
                                             suffix=".tmp")
        try:
            with os.fdopen(handle, "w+b") as out:
                torch.save(model.state_dict(), out)
                out.seek(0)
                with zipfile.ZipFile(out, "a") as archive:  # beside torch's records, which its loader alone reads
                    archive.writestr(f"{archive.namelist()[0].split('/')[0]}/{RECORD}", record)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException as error:
            Path(temporary).unlink(missing_ok=True)
            if out_of_space(error):
                raise DiskFullError(f"no space left on device writing the checkpoint {path} (free space there or "
                                    "point KDBENCH_CACHE elsewhere; the next run resumes)") from None
            raise
        return path


def _record(path: Path) -> dict[str, Any]:
    """A checkpoint's ``kdbench.json``; empty for one written before it existed, or for one that is no zip
    archive at all (``load`` then says it is corrupt)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/" + RECORD)), None)
            return {} if name is None else json.loads(archive.read(name))
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}

