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
    from kdbench.kind import Kind
    from kdbench.leaderboard.columns import Column
    from kdbench.method import Method
    from kdbench.model import ModelSpec
    from kdbench.run import Run
    from kdbench.task import TaskSpec
    from kdbench.transform import StudentTransform

hookspec = pluggy.HookspecMarker("kdbench")

# --------------------------------------------------------------------------------------
# Registration: what a plugin offers. Results of every plugin are gathered; a name
# claimed by two plugins is an error that names both.
# --------------------------------------------------------------------------------------


@hookspec
def kdbench_tasks() -> list[TaskSpec]:
    """Return the tasks this plugin offers, as ``kdbench.TaskSpec`` objects.

    A task spec names the task, its kind, its modality, its default options and a
    ``build(**options)`` callable that returns a ``kdbench.Task``. The kind must be one some
    loaded plugin declares through ``kdbench_kinds`` (the built-in ones: 'classification',
    'ranking', 'denoising', 'dense'); a task of an undeclared kind is refused when plugins
    load. Building may read dataset files and must not download anything.
    """


@hookspec
def kdbench_teachers() -> list[ModelSpec]:
    """Return the models this plugin offers as teachers, as ``kdbench.ModelSpec`` objects.

    The same spec may also be returned from ``kdbench_students``: a model may be offered
    as both. A spec with ``black_box=True`` exposes logits only, and feature-based
    methods are skipped against it. One with ``pretrained=True`` is evaluated as built and
    never trained: its run is a measurement of the published model.
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
def kdbench_transforms() -> list[type[StudentTransform]]:
    """Return the student transforms this plugin offers, as ``kdbench.StudentTransform`` subclasses.

    A suite lists transforms per case (``transforms: [fp32, int8-dynamic, pruned-0.5]``) and
    every student row runs under each, with and without distillation, so a table shows what
    distillation adds on top of compressing the student. The core applies a transform around
    whatever method trains the student: ``before_training``, ``after_training``, then an optional
    fine-tuning phase by the same method. A class with ``argument`` set takes a number after a
    dash; its ``backend`` names the library doing the work, shown with the row.
    """


@hookspec
def kdbench_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin reads, as ``kdbench.DatasetSpec`` objects.

    Each spec lists its canonical files with SHA-256 and download addresses, which is
    what ``kdbench data fetch NAME`` uses; loaders check the same sums.
    """


@hookspec
def kdbench_kinds() -> list[Kind]:
    """Return the task kinds this plugin declares, as ``kdbench.Kind`` objects.

    A kind is what the leaderboard knows of the tasks that have it, so the core knows none by
    name: ``baseline`` names the method whose rows gain and gap closed are measured against
    (what a student gets without distillation), ``reference`` the method significance is
    tested against (the kind's plain KD), and ``metrics`` hold a ``kdbench.Metric`` for every
    metric its tasks log, saying which way is better (a shell-style pattern such as ``fd_n*``
    covers a family). A metric with a ``label`` is shown as a leaderboard column, mean ± std
    over each row's seeds, with its ``description`` as the footnote. A task's primary metric
    takes its direction from the task (``Task.higher_is_better``); any other metric a suite
    reports must be declared here. The plugin that declares a kind need not offer its tasks.
    """


# --------------------------------------------------------------------------------------
# Lifecycle: called by the runner. Return values are ignored; an exception in a
# lifecycle hook fails the run it belongs to.
# --------------------------------------------------------------------------------------


@hookspec
def kdbench_run_start(run: Run) -> None:
    """Called when a combination starts, before any training.

    ``run`` (``kdbench.Run``) says what the run trains and how: its task, the model it
    trains, the teachers, the method and its resolved parameters, the recipe, the seed,
    the full resolved config (the thing its key is the hash of) and ``run.run_id``, its
    MLflow run id, so a plugin may log more to the same run.
    """


@hookspec
def kdbench_epoch_end(run: Run, epoch: int, metrics: dict[str, float]) -> None:
    """Called after each training epoch of any model (teacher or student), and after each
    round of steps of a method whose budget is counted in optimiser steps.

    ``run`` is as in ``kdbench_run_start``; ``epoch`` counts from 1; ``metrics`` holds the
    epoch's mean training loss terms and the validation metrics, as logged to MLflow.
    """


@hookspec
def kdbench_run_end(run: Run, status: str, metrics: dict[str, float]) -> None:
    """Called when a combination that started ends, whatever the outcome.

    ``run`` is as in ``kdbench_run_start``; ``status`` is 'FINISHED', 'FAILED', 'KILLED',
    'N/A' (found incompatible only once running, e.g. a method that needs spatial maps
    given vectors) or 'PRUNED' (a tuning trial stopped early by the pruner); ``metrics``
    holds the final metrics (empty when the run did not finish).
    """


# --------------------------------------------------------------------------------------
# Leaderboards: called by ``kdbench leaderboard``, ``kdbench publish`` and the summary at
# the end of ``kdbench run``. Every plugin's answer is used.
# --------------------------------------------------------------------------------------


@hookspec
def kdbench_leaderboard_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[Column, Any]] | None:
    """Return extra leaderboard columns, as ``(kdbench.Column, values)`` pairs.

    A kind's metrics need no hook: a labelled ``Metric`` in ``kdbench_kinds`` is a column
    already. This hook is for what a declaration cannot say (a column per sampling-step
    count, say).

    ``runs`` holds one row per finished run of the suite (skipped ones too, with
    ``status`` 'N/A'): the identity columns ``task``, ``kind``, ``teacher``, ``student``,
    ``method`` (the variant), ``base_method``, ``role``, ``seed``, ``run_id`` and every final
    metric as logged (``test_accuracy``, ``params``, ``latency_ms``, ...).

    ``rows`` is the leaderboard as built so far, one row per line of the table (teacher
    and baseline reference rows included, ``role`` 'teacher', 'baseline' or 'method'): the
    group keys ``task``, ``teacher``, ``student``, ``method``, the task's ``kind`` and its
    ``reference`` (the variant ``p_holm`` is against), the statistics (``mean``, ``std``,
    ``n``, ``gap_closed``, ``p_holm``, ``rank``, ...) and ``run_ids``, the runs averaged into
    that row. It is a copy: changing it does nothing.

    Each ``values`` is a list with one entry per row of ``rows``, in order, or a
    ``pandas.Series`` indexed like ``rows``; it becomes the rows' field ``Column.key``. The
    column is drawn like the core's own in every output (terminal, markdown, HTML, CSV,
    JSON): ``header`` heads it, ``text(row)`` writes the cell of each row with a result (by
    default the value as it is), ``numeric`` aligns and sorts it, ``optional`` hides it when
    no row has a value, ``terminal`` says whether the terminal shows it, and ``footnote`` is
    printed under every table that does. Plugins' columns come after the core's, in plugin
    load order. Return None to add nothing; a key that is already a column is an error.
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
