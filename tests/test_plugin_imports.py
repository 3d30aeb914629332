"""Plugins meet the core and each other only through ``kdbench``'s public API.

A plugin that imports another plugin breaks when that one is not installed or is left out
(``KDBENCH_PLUGINS``), and one that imports ``kdbench.<submodule>`` breaks whenever the core is
reorganised; a core that imports a plugin is no longer the same for a third-party plugin.
The rule is read off the source (every import statement, at any depth), not off what happens
to be imported at run time.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import kdbench
from tests.conftest import REPO

PUBLIC = frozenset(kdbench.__all__)


def offences(source: str, package: str | None) -> list[tuple[int, str]]:
    """(line, reason) for each import crossing a boundary; ``package`` is the plugin the source belongs to, or None
    for the core, which may import any of its own modules but no plugin."""
    nodes = list(ast.walk(ast.parse(source)))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found += crossing(node.lineno, alias.name, [], package)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # relative imports stay in their package
            found += crossing(node.lineno, node.module, [alias.name for alias in node.names], package)
    bare = any(isinstance(node, ast.Import) and any(alias.name == "kdbench" for alias in node.names) for node in nodes)
    if package is not None and bare:  # `import kdbench` then `kdbench.data_root`: a submodule reached by attribute
        found += [(node.lineno, f"uses kdbench.{node.attr}, which kdbench.__all__ does not list") for node in nodes
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "kdbench" and node.attr not in PUBLIC]
    return sorted(found)


def crossing(line: int, module: str, names: list[str], package: str | None) -> list[tuple[int, str]]:
    top = module.partition(".")[0]
    if top.startswith("kdbench_") and top != package:
        return [(line, f"imports plugin module {module}")]
    if package is None or top != "kdbench":
        return []
    if module != "kdbench":
        return [(line, f"imports {module}; plugins may use only `from kdbench import ...`")]
    private = ", ".join(name for name in names if name not in PUBLIC)
    return [(line, f"imports {private} from kdbench, which kdbench.__all__ does not list")] if private else []


def report(root: Path, package_of: Callable[[Path], str | None]) -> list[str]:
    return [f"{path.relative_to(REPO)}:{line}: {reason}"
            for path in sorted(root.rglob("*.py"))
            for line, reason in offences(path.read_text(), package_of(path))]


def test_no_plugin_imports_another_plugin_or_a_private_core_module():
    plugins = REPO / "plugins"
    found = report(plugins, lambda path: path.relative_to(plugins).parts[0])
    assert not found, "plugins may import only their own package and `from kdbench import ...`:\n" + "\n".join(found)


def test_the_core_imports_no_plugin():
    found = report(REPO / "kdbench", lambda path: None)
    assert not found, "the core must not import a plugin:\n" + "\n".join(found)


def test_the_walker_flags_every_kind_of_offence():
    source = "\n".join([
        "import kdbench",
        "from kdbench import Method, data_root",
        "from kdbench.datasets import DatasetSpec",
        "import kdbench.registry",
        "from kdbench_vision.mnist import MNIST_FILES",
        "from kdbench_own.sub import helper",
        "from . import sibling",
        "def later():",
        "    import kdbench_methods.kd",
        "    return kdbench.model_call, kdbench.Method",
    ])
    flagged = dict(offences(source, "kdbench_own"))
    assert sorted(flagged) == [2, 3, 4, 5, 9, 10]
    assert "data_root" in flagged[2] and "Method" not in flagged[2] and "model_call" in flagged[10]
    assert [line for line, _ in offences(source, None)] == [5, 6, 9]  # the core: any plugin, its own modules freely
