"""Dataset specs: the canonical files a loader reads, and ``kdbench data fetch``."""

from __future__ import annotations

import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.data_root import data_root, dataset_file, sha256_of
from kdbench.errors import DatasetMissingError


@dataclass(frozen=True)
class DatasetFile:
    path: str
    """Path under ``<data root>/<dataset>/``."""
    sha256: str
    url: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: tuple[DatasetFile, ...]
    description: str = ""
    licence: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def path(self, relative: str) -> Path:
        """The checked path of one of this dataset's files."""
        for item in self.files:
            if item.path == relative:
                return dataset_file(self.name, relative, item.sha256)
        raise KeyError(f"{relative} is not a file of dataset {self.name}")

    def fetch(self) -> list[Path]:
        """Download every missing file from its canonical address and check it."""
        fetched = []
        for item in self.files:
            target = data_root() / self.name / item.path
            if target.is_file() and sha256_of(target) == item.sha256:
                continue
            if item.url is None:
                raise DatasetMissingError(
                    f"dataset '{self.name}': {item.path} has no download address; put it at {target}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".part")
            try:
                with urllib.request.urlopen(item.url, timeout=60) as response, open(partial, "wb") as out:
                    shutil.copyfileobj(response, out)
            except OSError as error:
                raise DatasetMissingError(
                    f"dataset '{self.name}': could not download {item.url} ({error})"
                ) from None
            partial.replace(target)
            dataset_file(self.name, item.path, item.sha256)
            fetched.append(target)
        return fetched
