"""Whether a process that left a temporary file behind is still alive: its file is removed only once
it is gone (the teacher cache's checkpoints, a store being created)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
