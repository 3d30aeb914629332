"""Loading plugins: the ``kdbench`` entry-point group, then ``--plugin`` modules or files.

Built-in plugins load through the same entry points as third-party ones.
``KDBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points (hermetic tests);
``KDBENCH_PLUGINS=a,b`` loads only the named entry points.
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
    """A plugin manager holding the entry-point plugins and every ``extra`` module or file."""
    manager = pluggy.PluginManager("kdbench")
    manager.add_hookspecs(hookspecs)
    if os.environ.get("KDBENCH_DISABLE_PLUGIN_AUTOLOAD") != "1":
        _load_entry_points(manager)
    for spec in extra:
        module = _import_plugin(spec)
        name = spec if not spec.endswith(".py") else Path(spec).stem
        if manager.is_registered(module):
            continue
        manager.register(module, name=name)
    return manager


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    allowed = os.environ.get("KDBENCH_PLUGINS")
    allow = {name.strip() for name in allowed.split(",")} if allowed else None
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
