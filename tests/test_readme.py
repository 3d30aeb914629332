"""The README's "add a method as a plugin" example, run as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import REPO

EXAMPLE = re.compile(r"<!-- readme-example: (\S+) -->\n```\w*\n(.*?)```", re.S)


def examples() -> dict[str, str]:
    return dict(EXAMPLE.findall((REPO / "README.md").read_text()))


def test_readme_has_every_example():
    names = {"my_logit_mse.py", "logit-mse-demo.yaml", "run-one-file", "pyproject.toml", "run-package"}
    assert set(examples()) == names


def test_one_file_plugin_runs_as_written(isolated: Path, cli):
    found = examples()
    (isolated / "my_logit_mse.py").write_text(found["my_logit_mse.py"])
    (isolated / "logit-mse-demo.yaml").write_text(found["logit-mse-demo.yaml"])
    command = shlex.split(found["run-one-file"].strip())
    assert command[0] == "kdbench"
    code, out, err = cli(*command[1:])
    assert code == 0, err
    assert "logit-mse" in out
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("logit-mse-demo")
    runs = client.search_runs([experiment.experiment_id], "tags.`kdbench.method` = 'logit-mse'")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]  # two seeds
    assert all(0.5 < r.data.metrics["test_accuracy"] <= 1 for r in runs)


def test_package_plugin_registers_through_the_entry_point(isolated: Path, entry_point_plugins):
    found = examples()
    package = isolated / "kdbench-logit-mse"
    package.mkdir()
    (package / "pyproject.toml").write_text(found["pyproject.toml"])
    (package / "my_logit_mse.py").write_text(found["my_logit_mse.py"])
    install, listing = [shlex.split(line) for line in found["run-package"].strip().splitlines()]
    assert install == ["pip", "install", "."]
    # The README's `pip install .`, kept out of the test environment: into a target folder.
    target = isolated / "site"
    subprocess.run([sys.executable, "-m", *install, "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(target)], cwd=package, check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-m", "kdbench.cli", *listing[1:3]], cwd=isolated, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "logit-mse" in line and "│" in line)
    assert "logit-mse" in row.split("│")[3], row  # the plugin column names the entry point
    # and the listing says which environment ran it and which distribution brought the plugin
    assert f"python environment: {sys.prefix}" in result.stdout
    loaded = next(line for line in result.stdout.splitlines() if line.startswith("plugins loaded:"))
    assert "kdbench-logit-mse==0.1.0 (logit-mse)" in loaded, loaded


def test_ci_runs_the_readmes_own_test_command():
    block = re.search(r"<!-- readme-commands -->\n```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "the README opens with its two commands"
    quickstart, tests = (line.split("#")[0].strip() for line in block.group(1).strip().splitlines())
    assert quickstart.startswith("pip install") and quickstart.endswith("kdbench run suites/quickstart.yaml")
    assert tests.startswith("pip install") and tests.endswith("&& pytest")
    assert tests in (REPO / ".ci" / "run").read_text().splitlines(), ".ci/run must call the README's test command"
