"""Every hook a kdbench plugin can implement. Each docstring here is that hook's documentation.

A plugin is a module (or package) with functions decorated by ``kdbench.hookimpl``
whose names are the hooks below; an implementation may accept any subset of the
documented arguments. Plugins come from the ``kdbench`` entry-point group (the
built-in plugins too) and from ``kdbench run --plugin module_or_file.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from kdbench.datasets import DatasetSpec
    from kdbench.method import Method
    from kdbench.model import ModelSpec
    from kdbench.task import TaskSpec

hookspec = pluggy.HookspecMarker("kdbench")

# --------------------------------------------------------------------------------------
# Registration: what a plugin offers. Results of every plugin are gathered; a name
# claimed by two plugins is an error that names both.
# --------------------------------------------------------------------------------------


@hookspec
def kdbench_tasks() -> list[TaskSpec]:
    """Return the tasks this plugin offers, as ``kdbench.TaskSpec`` objects.

    A task spec names the task, its kind ('classification', 'ranking', 'denoising' or
    'dense'), its modality, its default options and a ``build(**options)`` callable
    that returns a ``kdbench.Task``. Building may read dataset files and must not
    download anything.
    """


@hookspec
def kdbench_teachers() -> list[ModelSpec]:
    """Return the models this plugin offers as teachers, as ``kdbench.ModelSpec`` objects.

    The same spec may also be returned from ``kdbench_students``: a model may be offered
    as both. A spec with ``black_box=True`` exposes logits only, and feature-based
    methods are skipped against it.
    """


@hookspec
def kdbench_students() -> list[ModelSpec]:
    """Return the models this plugin offers as students, as ``kdbench.ModelSpec`` objects."""


@hookspec
def kdbench_methods() -> list[type[Method]]:
    """Return the distillation methods this plugin offers, as ``kdbench.Method`` subclasses.

    The class attributes say which task kinds the method supports, its scheme, what it
    needs from the teacher and its hyper-parameter defaults; the class docstring is
    shown by ``kdbench list methods``.
    """


@hookspec
def kdbench_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin reads, as ``kdbench.DatasetSpec`` objects.

    Each spec lists its canonical files with SHA-256 and download addresses, which is
    what ``kdbench data fetch NAME`` uses; loaders check the same sums.
    """


# --------------------------------------------------------------------------------------
# Lifecycle: called by the runner. Return values are ignored; an exception in a
# lifecycle hook fails the run it belongs to.
# --------------------------------------------------------------------------------------


@hookspec
def kdbench_run_start(config: dict[str, Any], run_id: str) -> None:
    """Called when a combination starts, before any training.

    ``config`` is the run's full resolved config (the thing its hash is taken over);
    ``run_id`` is its MLflow run id, so a plugin may log more to the same run.
    """


@hookspec
def kdbench_epoch_end(config: dict[str, Any], run_id: str, epoch: int, metrics: dict[str, float]) -> None:
    """Called after each training epoch of any model (teacher or student).

    ``config`` and ``run_id`` are as in ``kdbench_run_start``; ``epoch`` counts from 1;
    ``metrics`` holds the epoch's mean training loss terms and
    the validation metrics, as logged to MLflow.
    """


@hookspec
def kdbench_run_end(config: dict[str, Any], run_id: str, status: str, metrics: dict[str, float]) -> None:
    """Called when a combination ends, whatever the outcome.

    ``config`` and ``run_id`` are as in ``kdbench_run_start``; ``status`` is 'FINISHED', 'FAILED', 'KILLED'
    or 'N/A' (found incompatible only once running, e.g. a method that needs spatial maps
    given vectors); ``metrics`` holds the final test
    metrics (empty when the run did not finish).
    """


# --------------------------------------------------------------------------------------
# Leaderboards: called by ``kdbench leaderboard``, ``kdbench publish`` and the summary at
# the end of ``kdbench run``. Every plugin's answer is used.
# --------------------------------------------------------------------------------------


@hookspec
def kdbench_leaderboard_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> dict[str, Any] | None:
    """Return extra leaderboard columns, as a mapping from column name to values.

    ``runs`` holds one row per finished run of the suite (skipped ones too, with
    ``status`` 'N/A'): the identity columns ``task``, ``teacher``, ``student``, ``method``
    (the variant), ``base_method``, ``role``, ``seed``, ``run_id`` and every final metric
    as logged (``test_accuracy``, ``params``, ``latency_ms``, ...).

    ``rows`` is the leaderboard as built so far, one row per line of the table (teacher
    and student-only reference rows included, ``role`` 'teacher', 'baseline' or
    'method'): the group keys ``task``, ``teacher``, ``student``, ``method``, the
    statistics (``mean``, ``std``, ``n``, ``gap_closed``, ``p_holm``, ``rank``, ...) and
    ``run_ids``, the runs averaged into that row. It is a copy: changing it does nothing.

    Each value is a list with one entry per row of ``rows``, in order, or a
    ``pandas.Series`` indexed like ``rows``. Return None to add nothing. Columns appear
    in every output (terminal, markdown, HTML, CSV, JSON) in plugin load order; a name
    that is already a column is an error.
    """


@hookspec
def kdbench_leaderboard_plots(runs: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[str, str, Figure]] | None:
    """Return extra plots for one (task, teacher, student) group of a published leaderboard.

    The core's plots show one metric per row; a plugin whose rows carry a curve (the
    Fréchet distance at every sampling-step count, say) draws it here. ``runs`` and
    ``rows`` are as in ``kdbench_leaderboard_columns``, except that ``rows`` holds only
    this group's lines, with the plugins' columns added. Return a list of ``(name,
    caption, figure)``: ``name`` becomes part of the PNG's file name (letters, digits,
    ``-`` and ``_``), ``caption`` is shown under it, and ``figure`` is a
    ``matplotlib.figure.Figure`` the core saves (draw on the object API, not ``pyplot``).
    Return None to add nothing.
    """
