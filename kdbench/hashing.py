"""Content hashes that key runs and cached teachers.

The hash must be the same in every process and on every machine, so it is taken over
canonical JSON (sorted keys, no whitespace) and never over Python's ``hash``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def config_hash(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    raise TypeError(f"cannot hash a {type(value).__name__} in a run config")
