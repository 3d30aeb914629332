"""Loading plugins: the ``kdbench`` entry-point group, an explicit list, then ``--plugin`` modules or files.

Built-in plugins load through the same entry points as third-party ones, so whatever kdbench
plugin is installed loads too. Like pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` and
``PYTEST_PLUGINS``, the environment can choose the plugins instead; the test suite does, so that
an installed third-party plugin cannot change what the tests see:

``KDBENCH_DISABLE_PLUGIN_AUTOLOAD=1``
    skips the entry points.
``KDBENCH_LOAD_PLUGINS=vision=kdbench_vision,methods=kdbench_methods``
    imports these modules whether or not entry points load, each registered under the name
    before its ``=`` (a bare module is named after itself), so that listings and errors name a
    built-in as its entry point does.
``KDBENCH_PLUGINS=vision,methods``
    keeps only the plugins of these names, from either source (a process that needs few starts faster).

Workers inherit all three (executors forward ``KDBENCH_*``), so they load what the driver loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pluggy

from kdbench import hookspecs
from kdbench.errors import PluginError

ENTRY_POINT_GROUP = "kdbench"


class PluginLoadWarning(UserWarning):
    """An installed plugin failed to import; the others still load."""


def load_plugins(extra: Sequence[str] = ()) -> pluggy.PluginManager:
    """A plugin manager holding the entry-point plugins, the ``KDBENCH_LOAD_PLUGINS`` modules and every ``extra``
    module or file."""
    manager = pluggy.PluginManager("kdbench")
    manager.add_hookspecs(hookspecs)
    allowed = os.environ.get("KDBENCH_PLUGINS")
    allow = {name.strip() for name in allowed.split(",")} if allowed else None
    if os.environ.get("KDBENCH_DISABLE_PLUGIN_AUTOLOAD") != "1":
        _load_entry_points(manager, allow)
    for name, spec in _listed_plugins():
        if (allow is not None and name not in allow) or manager.get_plugin(name) is not None:
            continue
        module = _import_plugin(spec)
        if not manager.is_registered(module):
            manager.register(module, name=name)
    for spec in extra:
        module = _import_plugin(spec)
        name = spec if not spec.endswith(".py") else Path(spec).stem
        if manager.is_registered(module):
            continue
        manager.register(module, name=name)
    return manager


def _listed_plugins() -> list[tuple[str, str]]:
    """``KDBENCH_LOAD_PLUGINS`` as (name, module) pairs, in the order they are to be registered."""
    pairs = []
    for entry in os.environ.get("KDBENCH_LOAD_PLUGINS", "").split(","):
        name, _, module = (part.strip() for part in entry.rpartition("="))
        if module:
            pairs.append((name or module, module))
    return pairs


def _load_entry_points(manager: pluggy.PluginManager, allow: set[str] | None) -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allow is not None and entry_point.name not in allow:
            continue
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            module = entry_point.load()
        except Exception as error:  # a broken plugin must not take the others down
            warnings.warn(
                f'Error importing plugin "{entry_point.name}" ({entry_point.value}): '
                f"{type(error).__name__}: {error}",
                PluginLoadWarning,
                stacklevel=2,
            )
            continue
        manager.register(module, name=entry_point.name)


def _import_plugin(spec: str) -> ModuleType:
    """Import ``spec``: a path to a ``.py`` file, or an importable module name."""
    try:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise PluginError(f"--plugin {spec}: no such file")
            digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
            module_name = f"kdbench_plugin_{path.stem}_{digest}"
            if module_name in sys.modules:
                return sys.modules[module_name]
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
            return module
        return importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as error:
        raise PluginError(
            f'Error importing plugin "{spec}": {type(error).__name__}: {error}'
        ) from None
