"""Plugin loading: entry points, --plugin files and modules, conflicts, broken plugins, docs."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import kdbench
from kdbench import UserError, hookspecs
from kdbench.errors import PluginError
from kdbench.registry import Registry
from tests.conftest import BUILT_IN_PLUGINS

METHOD_PLUGIN = """
import torch
from kdbench import Method, hookimpl


class Echo(Method):
    \"\"\"A test method.\"\"\"
    name = "{name}"
    kinds = ("classification",)
    scheme = "none"
    needs = "none"

    def loss(self, batch, student, teachers):
        return {{"task": self.task.loss(student.output, batch)}}


@hookimpl
def kdbench_methods():
    return [Echo]
"""


def plugin_file(folder: Path, stem: str, method_name: str) -> Path:
    path = folder / f"{stem}.py"
    path.write_text(METHOD_PLUGIN.format(name=method_name))
    return path


def test_every_hook_is_documented():
    specs = [obj for name, obj in inspect.getmembers(hookspecs) if name.startswith("kdbench_")]
    assert len(specs) >= 8
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        assert len(doc) > 40, f"hook {spec.__name__} needs a docstring that documents it"
        for parameter in inspect.signature(spec).parameters:
            assert parameter in doc, f"hook {spec.__name__}: parameter '{parameter}' is not documented"


def test_built_in_plugins_load_through_entry_points(entry_point_plugins):
    registry = Registry.load()
    assert registry.methods.plugins["kd"] == "methods"
    assert registry.tasks.plugins["digits"] == "vision"
    assert "hinton-mlp-1200" in registry.teachers and "hinton-mlp-800" in registry.students


def test_autoload_can_be_switched_off(entry_point_plugins, monkeypatch):
    monkeypatch.setenv("KDBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = Registry.load()
    assert registry.methods.names() == [] and registry.tasks.names() == []


def test_allow_list_restricts_entry_points(entry_point_plugins, monkeypatch):
    monkeypatch.setenv("KDBENCH_PLUGINS", "methods")
    registry = Registry.load()
    assert "kd" in registry.methods and registry.tasks.names() == []


def test_plugin_file_is_loaded(isolated: Path):
    path = plugin_file(isolated, "echo_plugin", "echo")
    registry = Registry.load([str(path)])
    assert registry.methods.plugins["echo"] == "echo_plugin"


def test_plugin_module_is_loaded(isolated: Path, monkeypatch):
    plugin_file(isolated, "echo_module", "echo-module")
    monkeypatch.syspath_prepend(str(isolated))
    try:
        registry = Registry.load(["echo_module"])
        assert registry.methods.plugins["echo-module"] == "echo_module"
    finally:
        sys.modules.pop("echo_module", None)


def test_two_plugins_claiming_one_name_is_an_error_naming_both(isolated: Path):
    first = plugin_file(isolated, "first_plugin", "same-name")
    second = plugin_file(isolated, "second_plugin", "same-name")
    with pytest.raises(PluginError) as error:
        Registry.load([str(first), str(second)])
    message = str(error.value)
    assert "'same-name'" in message and "first_plugin" in message and "second_plugin" in message


def test_a_plugin_shadowing_a_built_in_is_refused(isolated: Path):
    path = plugin_file(isolated, "shadow", "kd")
    with pytest.raises(PluginError, match="'methods' and 'shadow'"):
        Registry.load([str(path)])


def test_conflict_through_the_cli_is_one_line(isolated: Path, cli, tiny_suite):
    path = plugin_file(isolated, "shadow_cli", "kd")
    code, out, err = cli("run", tiny_suite(), "--plugin", path)
    assert code == 2
    assert err.strip().count("\n") == 0 and "registered by two plugins" in err and "Traceback" not in err


def test_plugin_that_raises_at_import_is_named(isolated: Path, cli):
    broken = isolated / "broken_plugin.py"
    broken.write_text("raise RuntimeError('boom at import')\n")
    code, _, err = cli("list", "methods", "--plugin", broken)
    assert code == 2
    assert err.strip() == f'kdbench: error: Error importing plugin "{broken}": RuntimeError: boom at import'


def test_missing_plugin_file(cli):
    code, _, err = cli("list", "--plugin", "nope.py")
    assert code == 2 and "--plugin nope.py: no such file" in err


def test_broken_entry_point_warns_and_others_still_load(entry_point_plugins, monkeypatch):
    import importlib.metadata as metadata

    real = metadata.entry_points

    def with_broken(**kwargs):
        found = list(real(**kwargs))
        if kwargs.get("group") == "kdbench":
            found.append(metadata.EntryPoint("broken", "kdbench_no_such_module", "kdbench"))
        return found

    monkeypatch.setattr(metadata, "entry_points", with_broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = Registry.load()
    assert "kd" in registry.methods
    assert any('Error importing plugin "broken"' in str(w.message) for w in caught)


def test_list_shows_names_kinds_and_plugins(cli):
    code, out, _ = cli("list", "methods")
    assert code == 0
    row = next(line for line in out.splitlines() if " kd " in line)
    assert "classification" in row and "methods" in row
    code, out, _ = cli("list", "tasks")
    assert "digits" in out and "vision" in out
    code, out, _ = cli("list", "suites")
    assert "quickstart" in out and "hinton-mnist" in out


def test_hook_implementation_may_take_a_subset_of_arguments(isolated: Path, cli, tiny_suite):
    seen = isolated / "seen.txt"
    path = isolated / "lifecycle_plugin.py"
    path.write_text(textwrap.dedent(f"""
        from kdbench import hookimpl

        @hookimpl
        def kdbench_epoch_end(epoch):
            with open({str(seen)!r}, "a") as out:
                out.write(f"epoch {{epoch}}\\n")

        @hookimpl
        def kdbench_run_end(run, status):
            with open({str(seen)!r}, "a") as out:
                out.write(f"end {{run.role}} {{run.model.name}} {{run.method and run.method.name}} seed {{run.seed}} "
                          f"{{run.recipe.epochs}} {{len(run.run_id)}} {{status}}\\n")
    """))
    code, _, err = cli("run", tiny_suite(methods="[student-only]"), "--plugin", path)
    assert code == 0, err
    lines = seen.read_text().splitlines()
    assert lines.count("epoch 1") == 2  # the teacher's and the student's single epoch
    # the typed run: role, model, method, seed, recipe and its MLflow run id (32 hex digits)
    assert "end teacher hinton-mlp-1200 None seed 0 1 32 FINISHED" in lines
    assert "end student mlp-30 student-only seed 0 1 32 FINISHED" in lines


@pytest.fixture
def installed_plugin(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    """A distribution installed on ``sys.path`` whose ``kdbench`` entry point 'intruder' registers a method of that
    name: what a third-party plugin in the test environment looks like to importlib.metadata."""
    site = isolated / "site"
    info = site / "kdbench_intruder-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kdbench-intruder\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kdbench]\nintruder = intruder_plugin\n")
    plugin_file(site, "intruder_plugin", "intruder")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("intruder_plugin", None)


def test_an_installed_plugin_stays_out_of_the_test_session(installed_plugin: Path):
    registry = Registry.load()
    built_ins = {entry.partition("=")[0] for entry in BUILT_IN_PLUGINS.split(",")}
    assert {name for name, _ in registry.manager.list_name_plugin()} == built_ins
    assert "intruder" not in registry.methods and "intruder_plugin" not in sys.modules
    # the environment reaches a process a test starts, as it reaches executors' workers
    listing = subprocess.run([sys.executable, "-m", "kdbench.cli", "list", "methods"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(installed_plugin)}, check=True)
    assert " kd " in listing.stdout and "intruder" not in listing.stdout


def test_an_installed_plugin_loads_when_a_test_asks_for_entry_points(installed_plugin: Path, entry_point_plugins):
    registry = Registry.load()
    assert registry.methods.plugins["intruder"] == "intruder" and registry.methods.plugins["kd"] == "methods"


def test_listed_plugins_are_named_as_listed_and_obey_the_allow_list(monkeypatch):
    monkeypatch.setenv("KDBENCH_LOAD_PLUGINS", "vision=kdbench_vision, kdbench_methods")
    registry = Registry.load()
    assert registry.tasks.plugins["digits"] == "vision" and registry.methods.plugins["kd"] == "kdbench_methods"
    monkeypatch.setenv("KDBENCH_PLUGINS", "kdbench_methods")
    registry = Registry.load()
    assert "kd" in registry.methods and registry.tasks.names() == []


def test_a_listed_plugin_that_cannot_be_imported_is_an_error(monkeypatch):
    monkeypatch.setenv("KDBENCH_LOAD_PLUGINS", "gone=kdbench_no_such_module")
    with pytest.raises(PluginError, match='Error importing plugin "kdbench_no_such_module"'):
        Registry.load()


def test_a_dataset_is_found_by_name_among_the_loaded_plugins(monkeypatch):
    from kdbench_diffusion.mnist import build_mnist_diffusion

    registry = Registry.load()
    assert registry.datasets.plugins["mnist"] == "vision" and kdbench.dataset("mnist") == registry.datasets.get("mnist")
    monkeypatch.setenv("KDBENCH_PLUGINS", "methods")  # no plugin declares mnist
    with pytest.raises(UserError) as error:
        build_mnist_diffusion()
    assert str(error.value) == "unknown dataset 'mnist' (known: none)"
