"""Trained teachers on disk, keyed by the content hash of what produced them.

A teacher is trained once per (task and its options, architecture, seed, recipe) and
reused by every method and every later invocation; a student run that others start from
(a case's ``init``) keeps its weights here the same way. Writes are atomic (temporary
file, fsync, rename), so a killed run never leaves a partial checkpoint behind, and
the temporary file a killed writer left is removed by the next cache opened on that
host; loading uses ``weights_only=True``.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import torch
from torch import nn

from kdbench.errors import UserError

_HOST = socket.gethostname().replace(".", "-")


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
            if len(parts) == 6 and parts[2] == _HOST and parts[3].isdigit() and not _alive(int(parts[3])):
                temporary.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

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

    def save(self, key: str, model: nn.Module) -> Path:
        path = self.path(key)
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{key}.{_HOST}.{os.getpid()}.",
                                             suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                torch.save(model.state_dict(), out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
