"""A kdbench plugin that writes down which process loaded the plugins and which ran each run, for the
executor tests: ``KDBENCH_TEST_LOADS`` names the file, one ``load PID`` line per registry load (the
``kdbench_tasks`` hook is called once per load) and one ``run PID ROLE MODEL`` line per run start."""

from __future__ import annotations

import os

from kdbench import Run, hookimpl


def _write(line: str) -> None:
    with open(os.environ["KDBENCH_TEST_LOADS"], "a") as out:
        out.write(line + "\n")


@hookimpl
def kdbench_tasks() -> list:
    _write(f"load {os.getpid()}")
    return []


@hookimpl
def kdbench_run_start(run: Run) -> None:
    _write(f"run {os.getpid()} {run.role} {run.model.name}")
