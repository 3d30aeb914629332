"""The core's IDX reader, on files written here (the MNIST-backed tests read the real ones)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from kdbench import UserError, read_idx


def write_idx(path: Path, type_code: int, dims: tuple[int, ...], payload: bytes) -> Path:
    header = struct.pack(">I", type_code << 8 | len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    path.write_bytes(gzip.compress(header + payload))
    return path


def test_unsigned_bytes_come_back_in_their_shape(tmp_path: Path):
    values = np.arange(24, dtype=np.uint8)
    array = read_idx(write_idx(tmp_path / "x.gz", 0x08, (2, 3, 4), values.tobytes()))
    assert array.dtype == np.uint8 and array.shape == (2, 3, 4)
    assert np.array_equal(array.ravel(), values)


def test_another_data_type_is_refused_not_misread(tmp_path: Path):
    path = write_idx(tmp_path / "floats.gz", 0x0D, (2,), struct.pack(">2f", 1.0, 2.0))
    with pytest.raises(UserError, match=r"floats.gz: not an unsigned-byte IDX file \(magic 0xd01\)"):
        read_idx(path)
