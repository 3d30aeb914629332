"""What the loaded plugins offer, by name, with the plugin each name came from.

Names are gathered per hook implementation (pluggy's ``get_hookimpls``) so that a
name claimed twice is refused with an error naming both plugins, rather than one
silently shadowing the other. Every task's kind must be declared by some plugin
(``kdbench_kinds``): the kind is what tells a leaderboard how to read the task's results.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from kdbench.errors import PluginError, UserError
from kdbench.plugin_manager import load_plugins

if TYPE_CHECKING:  # annotations only: reading names (a suite's, `kdbench list`) must not import torch
    from kdbench.datasets import DatasetSpec
    from kdbench.kind import Kind
    from kdbench.method import Method
    from kdbench.model import ModelSpec
    from kdbench.task import TaskSpec
    from kdbench.transform import StudentTransform

T = TypeVar("T")


@dataclass
class Catalogue(Generic[T]):
    """Entries of one sort (tasks, teachers, ...) keyed by name, with their plugin."""

    sort: str
    entries: dict[str, T] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, entry: T, plugin: str) -> None:
        if name in self.entries:
            raise PluginError(
                f"{self.sort[:-1]} name '{name}' is registered by two plugins: "
                f"'{self.plugins[name]}' and '{plugin}'"
            )
        self.entries[name] = entry
        self.plugins[name] = plugin

    def get(self, name: str) -> T:
        if name not in self.entries:
            raise UserError(unknown_name_message(self.sort[:-1], name, self.entries))
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)


def unknown_name_message(sort: str, name: Any, known: Iterable[str]) -> str:
    """'unknown method 'kdd'; did you mean 'kd'? (known: ...)' — shared by the CLI and suite checks."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {sort} '{name}'{hint} (known: {', '.join(known) or 'none'})"


@dataclass
class Registry:
    manager: pluggy.PluginManager
    tasks: Catalogue[TaskSpec]
    teachers: Catalogue[ModelSpec]
    students: Catalogue[ModelSpec]
    methods: Catalogue[type[Method]]
    datasets: Catalogue[DatasetSpec]
    kinds: Catalogue[Kind]
    transforms: Catalogue[type[StudentTransform]]

    @classmethod
    def load(cls, extra_plugins: Sequence[str] = ()) -> Registry:
        """Load every plugin and gather what each one registers."""
        manager = load_plugins(extra_plugins)
        registry = cls(
            manager=manager,
            tasks=_gather(manager, "kdbench_tasks", "tasks", lambda spec: spec.name),
            teachers=_gather(manager, "kdbench_teachers", "teachers", lambda spec: spec.name),
            students=_gather(manager, "kdbench_students", "students", lambda spec: spec.name),
            methods=_gather(manager, "kdbench_methods", "methods", lambda method: method.name),
            datasets=_gather(manager, "kdbench_datasets", "datasets", lambda spec: spec.name),
            kinds=_gather(manager, "kdbench_kinds", "kinds", lambda kind: kind.name),
            transforms=_gather(manager, "kdbench_transforms", "transforms", lambda transform: transform.name),
        )
        _require_kinds(registry.tasks, registry.kinds)
        return registry


def dataset(name: str) -> DatasetSpec:
    """The dataset ``name`` as its declaring plugin registered it, so that a plugin reading
    another's files neither imports that plugin nor declares the files a second time.

    The plugins consulted are the ones the environment selects (entry points,
    ``KDBENCH_LOAD_PLUGINS``, ``KDBENCH_PLUGINS``), loaded afresh on every call rather than
    taken from whichever registry was loaded last: a task's build function then finds the same
    datasets in the driver, in a worker (which inherits ``KDBENCH_*``) and in a unit test that
    calls it directly. ``--plugin`` modules are not among them.
    """
    return Registry.load().datasets.get(name)


def _require_kinds(tasks: Catalogue[TaskSpec], kinds: Catalogue[Kind]) -> None:
    """Refuse, at load, a task whose results no leaderboard could read: its kind is undeclared."""
    for name, spec in tasks.entries.items():
        if spec.kind not in kinds:
            raise PluginError(
                f"task '{name}' of plugin '{tasks.plugins[name]}' has kind '{spec.kind}', which no loaded "
                f"plugin declares through kdbench_kinds (declared: {', '.join(kinds.names()) or 'none'})"
            )


def _gather(manager: pluggy.PluginManager, hook_name: str, sort: str, name_of: Any) -> Catalogue:
    catalogue: Catalogue = Catalogue(sort)
    hook = getattr(manager.hook, hook_name)
    for impl in hook.get_hookimpls():  # in registration order
        try:
            offered = impl.function() or []
        except Exception as error:
            raise PluginError(
                f"plugin '{impl.plugin_name}' failed in {hook_name}: {type(error).__name__}: {error}"
            ) from None
        for entry in offered:
            catalogue.add(name_of(entry), entry, impl.plugin_name)
    return catalogue
