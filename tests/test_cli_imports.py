"""Answering fast: `--help`, a suite failing validation and a name no plugin declares need neither torch nor
the plugins; `kdbench list` reads a declarations snapshot, never a stale one; the public API resolves lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import kdbench
from kdbench import declarations
from tests.conftest import write_suite

WRAPPER = """
import sys, runpy
sys.argv = ["kdbench", *sys.argv[1:]]
try:
    runpy.run_module("kdbench.cli", run_name="__main__", alter_sys=True)
finally:
    heavy = sorted(name for name in ("torch", "mlflow", "pandas") if name in sys.modules)
    print("heavy imports:", heavy, file=sys.stderr)
"""

SUITE = """name: fast
tasks: [mnist]
pairs: [{{teacher: hinton-mlp-1200, student: hinton-mlp-800}}]
methods: [{method}]
{extra}
"""


def kdbench_light(*args: str) -> subprocess.CompletedProcess[str]:
    """``kdbench ARGS`` in a fresh process (the test's environment: its cache, the built-in plugins), which
    reports on stderr which heavy libraries it imported."""
    return subprocess.run([sys.executable, "-c", WRAPPER, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_imports_neither_torch_nor_mlflow(args):
    done = kdbench_light(*args)
    assert done.returncode == 0, done.stderr
    assert "usage: kdbench" in done.stdout
    assert "heavy imports: []" in done.stderr


def test_a_misspelt_field_is_reported_before_any_plugin_is_loaded(isolated):
    path = write_suite(isolated / "bad.yaml", SUITE.format(method="kd", extra="seedz: [0]"))
    done = kdbench_light("run", path)
    assert done.returncode == 2
    assert f"kdbench: error: {path}: seedz: unknown field 'seedz'; did you mean 'seeds'?" in done.stderr
    assert "heavy imports: []" in done.stderr


def test_an_unknown_method_is_reported_from_a_fresh_snapshot_without_torch(isolated, cli):
    code, _, _ = cli("list", "methods")  # a full load, in this process: writes the snapshot the next one reads
    assert code == 0 and (declarations._path()).is_file()
    path = write_suite(isolated / "typo.yaml", SUITE.format(method="kdd", extra=""))
    done = kdbench_light("run", path)
    assert done.returncode == 2
    assert f"{path}: methods[0].name: unknown method 'kdd'; did you mean 'kd'?" in done.stderr
    assert "heavy imports: []" in done.stderr
    declarations._path().unlink()  # the full registry gives the same message
    code, _, err = cli("run", path)
    assert code == 2 and err.strip() == done.stderr.splitlines()[0]


def test_list_reads_a_fresh_snapshot_and_never_a_stale_one(isolated, cli, monkeypatch):
    code, first, _ = cli("list", "methods")
    assert code == 0 and " kd " in first
    snapshot = declarations._path()
    data = json.loads(snapshot.read_text())
    data["rows"]["methods"].append(["zzsnap", "", "nowhere", ""])
    snapshot.write_text(json.dumps(data))
    assert "zzsnap" in cli("list", "methods")[1]  # the snapshot is what answered

    plugin = isolated / "extra_plugin.py"
    plugin.write_text("from kdbench import hookimpl\n")
    code, out, _ = cli("list", "methods", "--plugin", plugin)  # one more plugin: stale, so loaded afresh
    assert code == 0 and "zzsnap" not in out and " kd " in out

    snapshot.write_text(json.dumps(data))
    monkeypatch.setenv("KDBENCH_PLUGINS", "methods")  # another selection of plugins: stale as well
    code, out, _ = cli("list", "methods")
    assert code == 0 and "zzsnap" not in out and " kd " in out


def test_a_plugin_that_fails_to_import_leaves_no_snapshot(entry_point_plugins, cli, monkeypatch):
    import importlib.metadata as metadata

    assert cli("list", "methods")[0] == 0 and declarations._path().is_file()
    real = metadata.entry_points

    def with_broken(**kwargs):  # noqa: ANN003, ANN202
        found = list(real(**kwargs))
        if kwargs.get("group") == "kdbench":
            found.append(metadata.EntryPoint("broken", "kdbench_no_such_module", "kdbench"))
        return found

    monkeypatch.setattr(metadata, "entry_points", with_broken)
    for _ in range(2):  # said by every command until mended, not only by the first
        code, out, err = cli("list", "methods")
        assert code == 0 and " kd " in out
        assert 'kdbench: warning: Error importing plugin "broken"' in err
        assert not declarations._path().exists()


def test_the_fingerprint_follows_plugin_files_and_the_environment(isolated, monkeypatch):
    plugin = isolated / "extra_plugin.py"
    plugin.write_text("from kdbench import hookimpl\n")
    before = declarations.fingerprint([str(plugin)])
    assert declarations.fingerprint([str(plugin)]) == before  # nothing changed: the same
    assert declarations.fingerprint() != before
    plugin.write_text("from kdbench import hookimpl\n\n# edited\n")
    assert declarations.fingerprint([str(plugin)]) != before
    plain = declarations.fingerprint()
    for name in declarations.ENVIRONMENT:
        original = os.environ.get(name)
        monkeypatch.setenv(name, "changed")
        assert declarations.fingerprint() != plain, name
        if original is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, original)
    assert declarations.fingerprint() == plain


def test_a_built_in_plugin_file_changed_makes_the_snapshot_stale(monkeypatch, tmp_path):
    package = tmp_path / "kdbench_fake_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "methods.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("KDBENCH_LOAD_PLUGINS", "fake=kdbench_fake_plugin")
    before = declarations.fingerprint()
    (package / "methods.py").write_text("x = 22\n")  # a file inside the package, not its __init__
    assert declarations.fingerprint() != before


def test_every_public_name_imports():
    assert sorted(kdbench.__all__) == sorted(set(kdbench.__all__))
    for name in kdbench.__all__:
        namespace: dict[str, object] = {}
        exec(f"from kdbench import {name}", namespace)
        assert namespace[name] is getattr(kdbench, name)
    assert set(kdbench.__all__) <= set(dir(kdbench))
    with pytest.raises(AttributeError):
        kdbench.not_a_public_name  # noqa: B018
