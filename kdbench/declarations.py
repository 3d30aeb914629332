"""What the plugins declare, by name, kept from the last full load so that answering about names needs none.

Loading the plugins imports torch and whatever else they use (seconds); ``kdbench list`` and a suite
naming a method no plugin declares need only the names, with their plugin, kind / modality and
description. Each full load by the CLI writes them to ``<cache>/declarations.json``, keyed by a
fingerprint of everything that could change the set of plugins or what they declare:

- the ``kdbench`` entry points (name, value, distribution and its version);
- ``KDBENCH_LOAD_PLUGINS``, ``KDBENCH_PLUGINS`` and ``KDBENCH_DISABLE_PLUGIN_AUTOLOAD``;
- the ``--plugin`` arguments;
- the path, size and mtime of every plugin module file, and of every ``.py`` file in a plugin package;
- the mtime of each site-packages folder, which an install or uninstall changes (a plugin's own
  dependencies included).

A snapshot whose fingerprint differs is stale and is never read: the CLI loads the plugins instead
(and writes a fresh one). Only a load in which every plugin imported writes one, and a load in
which one failed removes it, so a broken plugin is reported by every command until it is mended.
A name found in a fresh snapshot still goes through the full checks of the loaded registry; only
a name the snapshot lacks is reported from it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import site
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdbench.registry import Registry

SCHEMA = 1
"""Bumped whenever what a snapshot holds changes, so an older one reads as stale."""

SORTS = ("tasks", "teachers", "students", "methods", "transforms", "datasets")
ENVIRONMENT = ("KDBENCH_LOAD_PLUGINS", "KDBENCH_PLUGINS", "KDBENCH_DISABLE_PLUGIN_AUTOLOAD")
FILE_NAME = "declarations.json"


@dataclass(frozen=True)
class Declarations:
    """What ``kdbench list`` prints of a loaded registry: its rows per sort and where its plugins come from."""

    rows: dict[str, list[list[str]]]
    """Per sort, one ``[name, kind / modality, plugin, description]`` per entry, sorted by name."""
    sources: dict[str, list[str]]
    """The plugins' names by where they come from (``dist==version``, or the file they were read from)."""

    @classmethod
    def of(cls, registry: Registry) -> Declarations:
        rows = {}
        for sort in SORTS:
            catalogue = getattr(registry, sort)
            rows[sort] = [[name, _kind_of(sort, catalogue.entries[name]), catalogue.plugins[name],
                           _describe(catalogue.entries[name])] for name in catalogue.names()]
        return cls(rows, _plugin_sources(registry))

    def names(self) -> dict[str, list[str]]:
        """The declared names per sort: what a suite's names are checked against first."""
        return {sort: [row[0] for row in rows] for sort, rows in self.rows.items()}


def names_of(registry: Registry) -> dict[str, list[str]]:
    """The names per sort of a loaded registry, as ``Declarations.names`` gives them from a snapshot."""
    return {sort: getattr(registry, sort).names() for sort in SORTS}


def fingerprint(extra: Sequence[str] = ()) -> str:
    """A digest of everything that selects the plugins or could change what they declare (module docstring),
    computed without importing any of them."""
    modules: list[str] = []
    points = []
    for point in sorted(importlib.metadata.entry_points(group="kdbench"), key=lambda p: (p.name, p.value)):
        dist = point.dist
        points.append([point.name, point.value, dist.name if dist else None, dist.version if dist else None])
        modules.append(point.module)
    from kdbench.plugin_manager import _listed_plugins

    modules += [module for _, module in _listed_plugins()]
    files: list[Any] = []
    for spec in extra:
        if spec.endswith(".py"):
            files.append(_stat(Path(spec).resolve()))
        else:
            modules.append(spec)
    for module in dict.fromkeys(modules):
        files.append([module, _module_files(module)])
    installed = [_stat(Path(folder)) for folder in [*site.getsitepackages(), site.getusersitepackages()]]
    parts = [SCHEMA, sys.executable, points, [os.environ.get(name) for name in ENVIRONMENT], list(extra), files,
             installed]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _module_files(module: str) -> list[Any]:
    """Path, size and mtime of the module's file, or of every ``.py`` file of its top-level package."""
    try:
        spec = importlib.util.find_spec(module.partition(".")[0])  # a top-level lookup imports nothing
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return ["not found"]
    if spec.submodule_search_locations:
        return [_stat(path) for location in spec.submodule_search_locations
                for path in sorted(Path(location).rglob("*.py"))]
    return [_stat(Path(spec.origin))] if spec.origin else [repr(spec)]


def _stat(path: Path) -> list[Any]:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _path() -> Path:
    from kdbench.data_root import cache_dir

    return cache_dir() / FILE_NAME


def read(key: str) -> Declarations | None:
    """The snapshot, when there is one and its fingerprint is ``key``; ``None`` otherwise (absent, stale,
    unreadable)."""
    try:
        data = json.loads(_path().read_text())
        if data.get("fingerprint") != key:
            return None
        return Declarations(data["rows"], data["sources"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write(declarations: Declarations, key: str) -> None:
    """Replace the snapshot atomically; a cache that cannot take it only costs the next command its speed."""
    try:
        path = _path()
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{FILE_NAME}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump({"fingerprint": key, "rows": declarations.rows, "sources": declarations.sources}, out)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass


def remove() -> None:
    """No snapshot: the next command loads the plugins."""
    try:
        _path().unlink(missing_ok=True)
    except OSError:
        pass


def _plugin_sources(registry: Registry) -> dict[str, list[str]]:
    """The loaded plugins by where they come from: the distribution (``name==version``) whose entry point
    or package holds each, else the file it was read from."""
    from kdbench.plugin_manager import ENTRY_POINT_GROUP

    points = {point.name: point for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    packages = importlib.metadata.packages_distributions()
    sources: dict[str, list[str]] = {}
    for name, module in registry.manager.list_name_plugin():
        point = points.get(name)
        if point is not None and point.dist is not None and point.module == module.__name__:
            source = f"{point.dist.name}=={point.dist.version}"
        elif owners := packages.get(module.__name__.partition(".")[0]):
            source = f"{owners[0]}=={importlib.metadata.version(owners[0])}"
        else:
            source = f"not installed: {getattr(module, '__file__', module.__name__)}"
        sources.setdefault(source, []).append(name)
    return sources


def _kind_of(sort: str, entry: Any) -> str:
    if sort == "tasks":
        return f"{entry.kind} / {entry.modality}"
    if sort in ("teachers", "students"):
        return "/".join(entry.kinds) + (f" / {'/'.join(entry.modalities)}" if entry.modalities else "")
    if sort == "methods":
        return f"{'/'.join(entry.kinds or ('any kind',))} / {entry.scheme}, needs {entry.needs}"
    if sort == "transforms":
        return f"{entry.name}-<{entry.argument}>" if entry.argument else entry.name
    return ""


def _describe(entry: object) -> str:
    text = getattr(entry, "description", "") or (getattr(entry, "__doc__", "") or "")
    return text.strip().splitlines()[0] if text.strip() else ""
