"""The IDX format (LeCun's MNIST files), in the core so every plugin that reads such files shares one reader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from kdbench.errors import UserError


def read_idx(path: str | Path) -> np.ndarray:
    """A gzip-compressed IDX file as a read-only numpy array (copy it before handing it to torch).

    Only unsigned-byte data is accepted: it is the one type the datasets in use hold, and a
    file of another type would otherwise be misread silently rather than refused.
    """
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * (magic & 0xFF), raw[4 : 4 + 4 * (magic & 0xFF)])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)
