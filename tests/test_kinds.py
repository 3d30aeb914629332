"""Task kinds are plugins' business: each plugin declares its kinds' baseline, reference and metrics,
and the leaderboard reads them from there — for the built-in kinds, and for a fifth one a plugin adds."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats

from kdbench import Kind, Metric
from kdbench.errors import PluginError, UserError
from kdbench.leaderboard import markdown
from kdbench.leaderboard.board import Board, load_board
from kdbench.leaderboard.columns import columns, footnotes
from kdbench.leaderboard.store import read
from kdbench.registry import Registry
from kdbench.suite import load_suite
from kdbench.tracking import RunRecord
from tests.conftest import REPO, write_suite
from tests.synthetic_store import copy, kinds


def run(task: str, kind: str, metric: str, higher: bool, method: str, seed: int, metrics: dict[str, float],
        teacher: str = "big", student: str = "small") -> RunRecord:
    """A finished run with the tags the runner writes; ``teacher='-'``: a teacher-free method's run."""
    role = "teacher" if method == "teacher" else ("student" if teacher == "-" else "distill")
    run_tags = {
        "kdbench.task": task, "kdbench.kind": kind, "kdbench.teacher": teacher, "kdbench.student": student,
        "kdbench.method": method, "kdbench.variant": method, "kdbench.role": role, "kdbench.seed": str(seed),
        "kdbench.config_hash": f"{task}/{method}/{seed}", "kdbench.checkpoint": "final",
        "kdbench.primary_metric": metric, "kdbench.higher_is_better": str(higher).lower(),
    }
    run_id = f"{task}-{method}-{seed}"
    return RunRecord(run_id, "FINISHED", run_tags, metrics, {}, seed, seed)


def group(task: str, kind: str, metric: str, higher: bool, values: dict[str, list[float]],
          teacher_free: frozenset[str] = frozenset(), logged: str | None = None) -> list[RunRecord]:
    """Every seed of every method of one (task, big, small) group, ``values`` logged as ``test_<logged>``
    (default: the primary metric); teacher-free methods have no teacher."""
    records = []
    for method, seeds in values.items():
        teacher, student = ("big", "-") if method == "teacher" else ("-" if method in teacher_free else "big", "small")
        records += [run(task, kind, metric, higher, method, seed, {f"test_{logged or metric}": value}, teacher, student)
                    for seed, value in enumerate(seeds)]
    return records


def row(board: Board, method: str) -> pd.Series:
    found = board.rows[board.rows["method"] == method]
    assert len(found) == 1, f"{method}: {len(found)} rows"
    return found.iloc[0]


def cell(board: Board, header: str, method: str) -> str:
    column = next(c for c in columns(board) if c.header == header)
    return column.cell(row(board, method))


def holm_of_two(p: float, q: float) -> tuple[float, float]:
    """Holm with m = 2, by hand: the smaller p doubled, the larger kept, never below the first."""
    low, high = sorted((p, q))
    first = min(1.0, 2 * low)
    second = max(first, high)
    return (first, second) if p <= q else (second, first)


# -- the built-in kinds: each declaration reaches the leaderboard ----------------------------------

BUILT_IN = {
    # kind: (metric, higher, declared baseline and reference, another method, seeds of teacher, baseline,
    #        reference, the other method); gain of the other = its mean − the baseline's, in the better direction
    "ranking": ("ndcg_10", True, ("student-only", "score-kd"), "rrd",
                ([0.30, 0.32, 0.34], [0.20, 0.21, 0.22], [0.24, 0.25, 0.26], [0.27, 0.29, 0.31]), 0.08, 0.04),
    "dense": ("map", True, ("student-only", "heatmap-kd"), "bev-feature",
              ([0.60, 0.62, 0.64], [0.30, 0.31, 0.32], [0.35, 0.36, 0.37], [0.40, 0.42, 0.44]), 0.11, 0.05),
    "denoising": ("fd", False, ("ddim-n", "progressive"), "consistency",
                  ([5.0, 6.0, 7.0], [50.0, 52.0, 54.0], [20.0, 22.0, 24.0], [10.0, 13.0, 16.0]), 39.0, 30.0),
}


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_each_built_in_kind_s_baseline_and_reference_reach_the_leaderboard(kind: str):
    metric, higher, declared, other, seeds, gain, reference_gain = BUILT_IN[kind]
    assert (kinds()[kind].baseline, kinds()[kind].reference) == declared  # as the plugin declares them
    baseline, reference = declared
    teacher_free = frozenset({baseline}) if baseline == "student-only" else frozenset()
    values = dict(zip(["teacher", baseline, reference, other], seeds, strict=True))
    board = load_board("kinds", group(f"{kind}-task", kind, metric, higher, values, teacher_free), kinds())

    assert list(board.rows["method"]) == ["teacher", baseline, other, reference]  # the other method ranks first
    assert list(board.rows["role"]) == ["teacher", "baseline", "method", "method"]
    assert row(board, other)["gain"] == pytest.approx(gain)
    assert row(board, reference)["gain"] == pytest.approx(reference_gain)
    p_other = stats.ttest_ind(values[other], values[reference], equal_var=False).pvalue
    p_baseline = stats.ttest_ind(values[baseline], values[reference], equal_var=False).pvalue
    holm_other, holm_baseline = holm_of_two(p_other, p_baseline)
    assert row(board, other)["p_vs_reference"] == pytest.approx(p_other)
    assert row(board, other)["p_holm"] == pytest.approx(holm_other)
    assert row(board, baseline)["p_holm"] == pytest.approx(holm_baseline)
    assert math.isnan(row(board, reference)["p_holm"])
    assert cell(board, "p vs ref", reference) == "ref"
    shown = f"{holm_other:.3f}" if holm_other >= 0.001 else "<0.001"
    assert cell(board, "p vs ref", other) == shown + ("*" if holm_other < 0.05 else "")
    notes = " ".join(footnotes(board))
    assert f"against '{reference}' ({kind})" in notes and f"Rows 'teacher' and '{baseline}'" in notes


def test_kinds_on_one_board_share_a_metric_s_column_and_each_names_its_reference(tmp_path: Path):
    """The synthetic store is classification (fidelity 0.90, 0.92, 0.94 for kd); a ranking group joins it."""
    from kdbench.tracking import Tracker

    ranking = [run("ml", "ranking", "ndcg_10", True, method, seed, {"test_ndcg_10": 0.2 + seed / 100,
                                                                    "test_fidelity": fidelity})
               for method, fidelities in (("score-kd", [0.5, 0.7]), ("rd", [0.6, 0.6]))
               for seed, fidelity in enumerate(fidelities)]
    board = load_board("mixed", Tracker(copy(tmp_path), "synthetic").runs() + ranking, kinds())
    fidelity = [c for c in columns(board) if c.header == "fidelity"]
    assert len(fidelity) == 1
    assert fidelity[0].footnote.startswith("fidelity = top-1 agreement with the teacher (classification); "
                                           "share of the teacher's top 10 that the model's top 10 holds (ranking)")
    kd = board.rows[(board.rows["task"] == "toy") & (board.rows["method"] == "kd")].iloc[0]
    assert fidelity[0].cell(kd) == "0.9200 ± 0.0200"
    assert fidelity[0].cell(row(board, "score-kd")) == "0.6000 ± 0.1414"  # (0.5, 0.7): std √0.02
    assert fidelity[0].cell(row(board, "rd")) == "0.6000 ± 0.0000"
    assert "against 'kd' (classification), 'score-kd' (ranking)" in " ".join(footnotes(board))
    assert cell(board, "p vs ref", "score-kd") == "ref"


# -- directions: declared, never guessed --------------------------------------------------------------

@pytest.mark.parametrize("higher", [True, False])
def test_a_metric_s_direction_is_its_declaration_not_its_name(higher: bool):
    """'loss_ratio' has 'loss' in it, which the old word list took for lower-is-better; its kind says."""
    ratios = {"ratios": Kind("ratios", "student-only", "kd",
                             (Metric("accuracy", True), Metric("loss_ratio", higher)))}
    values = {"teacher": [0.5, 0.5], "student-only": [0.6, 0.7], "kd": [0.2, 0.3], "bold": [0.8, 0.9]}
    records = group("t", "ratios", "accuracy", True, values, frozenset({"student-only"}), logged="loss_ratio")
    board = load_board("ratios", records, ratios, metric="loss_ratio")
    assert set(board.rows["higher_is_better"]) == {higher}
    by_rank = board.rows[board.rows["role"] != "teacher"].sort_values("rank")["method"].tolist()
    assert by_rank == (["bold", "student-only", "kd"] if higher else ["kd", "student-only", "bold"])
    assert row(board, "bold")["gain"] == pytest.approx(0.2 if higher else -0.2)  # 0.85 against 0.65


def test_a_metric_nobody_declares_is_a_one_line_user_error(cli, isolated: Path, tmp_path: Path):
    records = group("t", "ratios", "accuracy", True, {"teacher": [0.9], "kd": [0.8]})
    declared = {"ratios": Kind("ratios", "student-only", "kd", (Metric("accuracy", True),))}
    with pytest.raises(UserError, match=r"^metric 'mystery' has no declared direction: kind 'ratios' declares"):
        load_board("t", records, declared, metric="mystery")

    store = copy(tmp_path)
    suite = write_suite(isolated / "mystery.yaml", textwrap.dedent("""
        name: synthetic
        metric: mystery
        tasks: [digits]
        pairs:
          - {teacher: hinton-mlp-1200, student: mlp-30}
        methods: [student-only, kd]
    """))
    # the suite's own check refuses it when the file is read, before any board is built
    code, out, err = cli("leaderboard", suite, "--tracking-uri", store)
    assert (code, err.count("\n")) == (2, 1), err
    assert err.startswith(f"kdbench: error: {suite}: metric: unknown metric of task digits (kind classification) "
                          "'mystery'"), err
    assert "accuracy" in err and "Traceback" not in err


@pytest.mark.parametrize(("record", "kinds_in_it"), [
    ("smoke-before.json", {"classification", "ranking", "denoising", "dense"}),
    ("contract-before.json", {"classification", "ranking", "denoising"}),
])
def test_every_metric_the_built_in_tasks_log_has_a_declared_direction(record: str, kinds_in_it: set[str]):
    """The equality records hold every metric of every run of smoke and a contract suite, all kinds among them
    (timings left out: the denoising test checks ``sample_ms_n*``)."""
    registry = Registry.load()
    runs = json.loads((REPO / "tests" / "equality" / record).read_text())["runs"]
    seen = set()
    for key, metrics in runs.items():
        kind = registry.kinds.get(registry.tasks.get(key.split("|")[0]).kind)
        seen.add(kind.name)
        undeclared = [name for name in metrics if name.startswith("test_") and kind.metric(name[5:]) is None]
        assert not undeclared, f"{key}: kind {kind.name} declares no direction for {undeclared}"
    assert seen == kinds_in_it


# -- registration ---------------------------------------------------------------------------------

ORPHAN = """
from kdbench import TaskSpec, hookimpl


@hookimpl
def kdbench_tasks():
    return [TaskSpec("orphan", "sorting", "lists", lambda: None)]
"""


def test_a_task_of_a_kind_no_plugin_declares_is_refused_at_load(cli, isolated: Path):
    path = isolated / "orphan_plugin.py"
    path.write_text(ORPHAN)
    with pytest.raises(PluginError) as error:
        Registry.load([str(path)])
    message = str(error.value)
    assert "task 'orphan'" in message and "plugin 'orphan_plugin'" in message and "kind 'sorting'" in message
    code, _, err = cli("list", "tasks", "--plugin", path)
    assert code == 2 and err.count("\n") == 1 and "kind 'sorting'" in err


def test_a_kind_declared_twice_is_an_error_naming_both_plugins(isolated: Path):
    path = isolated / "second_ranking.py"
    path.write_text("from kdbench import Kind, hookimpl\n\n\n@hookimpl\ndef kdbench_kinds():\n"
                    "    return [Kind('ranking', 'student-only', 'rd')]\n")
    with pytest.raises(PluginError, match="kind name 'ranking' is registered by two plugins: 'recsys' and "
                                          "'second_ranking'"):
        Registry.load([str(path)])


def test_a_column_shows_one_metric_so_a_pattern_takes_no_label():
    with pytest.raises(ValueError, match="fd_n\\*"):
        Metric("fd_n*", False, label="fd at N")
    assert Kind("k", None, None, (Metric("fd_n*", False),)).metric("fd_n16").higher_is_better is False


# -- a fifth kind, from a plugin, end to end ------------------------------------------------------

CURVES_PLUGIN = '''
"""Fitting a line to noisy points: a task kind of its own, where a smaller error is better."""
import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Kind, Method, Metric, ModelOutput, ModelSpec, Recipe, Task, TaskSpec, call_model, hookimpl

KIND = "curve-fitting"


class Line(Task):
    kind = KIND
    primary_metric = "mse"
    higher_is_better = False

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=generator)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.3 * torch.randn(96, generator=generator)
        self.splits = {"train": (x[:64], y[:64]), "val": (x[64:80], y[64:80]), "test": (x[80:], y[80:])}
        self.info = {"input_shape": (4,)}

    @property
    def num_train(self):
        return 64

    def recipe(self, role):
        return Recipe(epochs=20, batch_size=16, optimizer="adam", lr=0.05)

    def batches(self, split, recipe, generator):
        x, y = self.splits[split]
        order = torch.randperm(len(y), generator=generator) if generator is not None else torch.arange(len(y))
        for index in order.split(16):
            yield {"x": x[index], "y": y[index], "index": index}

    def loss(self, output, batch):
        return F.mse_loss(output, batch["y"])

    @torch.no_grad()
    def evaluate(self, model, split, role, reference=None):
        x, y = self.splits[split]
        error = call_model(model, x).output - y
        return {"mse": error.pow(2).mean().item(), "mae": error.abs().mean().item()}


class Regressor(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1)) if hidden else nn.Linear(4, 1)

    def forward(self, x):
        return ModelOutput(self.net(x).squeeze(-1), {})


class Alone(Method):
    """The student fitted to the targets alone: this kind's baseline."""
    name = "fit-alone"
    kinds = (KIND,)
    scheme = "none"
    needs = "none"

    def loss(self, batch, student, teachers):
        return {"task": self.task.loss(student.output, batch)}


class Mimic(Method):
    """The student fitted to the teacher's predictions as well: this kind's plain KD."""
    name = "mimic"
    kinds = (KIND,)
    needs = "logits"

    def loss(self, batch, student, teachers):
        return {"task": self.task.loss(student.output, batch),
                "mimic": F.mse_loss(student.output, teachers[0].output)}


class Shuffled(Method):
    """The student fitted to other points' targets: a method that loses, so the ranking shows a direction."""
    name = "shuffled"
    kinds = (KIND,)
    scheme = "none"
    needs = "none"

    def loss(self, batch, student, teachers):
        return {"task": F.mse_loss(student.output, batch["y"].flip(0))}


@hookimpl
def kdbench_kinds():
    return [Kind(KIND, baseline="fit-alone", reference="mimic", metrics=(
        Metric("mse", higher_is_better=False, description="mean squared error"),
        Metric("mae", higher_is_better=False, label="mean |error|", description="mean absolute error"),
    ))]


@hookimpl
def kdbench_tasks():
    return [TaskSpec("line", KIND, "tabular", Line)]


@hookimpl
def kdbench_teachers():
    return [ModelSpec("wide-line", lambda task: Regressor(32), (KIND,))]


@hookimpl
def kdbench_students():
    return [ModelSpec("thin-line", lambda task: Regressor(0), (KIND,))]


@hookimpl
def kdbench_methods():
    return [Alone, Mimic, Shuffled]
'''
CURVES_SUITE = """
name: curves
seeds: 2
tasks: [line]
pairs:
  - {teacher: wide-line, student: thin-line}
methods: [fit-alone, mimic, shuffled]
"""


def test_a_plugin_adds_a_fifth_kind_and_its_board_follows_its_declaration(cli, isolated: Path):
    plugin = isolated / "curves_plugin.py"
    plugin.write_text(CURVES_PLUGIN)
    suite = write_suite(isolated / "curves.yaml", CURVES_SUITE)
    code, out, err = cli("run", suite, "--plugin", plugin)
    assert code == 0, out + err
    code, out, err = cli("leaderboard", suite, "--plugin", plugin)
    assert code == 0, err
    assert "line · wide-line → thin-line · mse ↓" in out and "p vs ref" in out and "mean |error|" in out
    printed: dict[str, str] = {}  # each method's line of the group's table (the cross-task table comes after it)
    for line in out.splitlines():
        if line.split()[:1] in (["teacher"], ["fit-alone"], ["mimic"], ["shuffled"]):
            printed.setdefault(line.split()[0], line)
    assert " ref " in printed["mimic"]

    registry = Registry.load([str(plugin)])
    board, _ = read(load_suite(suite, registry), None, registry.kinds.entries, registry.manager.hook)
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    logged: dict[str, list[dict[str, float]]] = {}
    for found in client.search_runs([client.get_experiment_by_name("curves").experiment_id]):
        logged.setdefault(found.data.tags["kdbench.method"], []).append(found.data.metrics)
    mse = {method: [m["test_mse"] for m in runs] for method, runs in logged.items()}
    mean = {method: sum(values) / len(values) for method, values in mse.items()}

    assert row(board, "fit-alone")["role"] == "baseline" and row(board, "mimic")["role"] == "method"
    assert not row(board, "mimic")["higher_is_better"]
    for method in ("mimic", "shuffled"):  # gain over the kind's baseline, lower being better
        assert row(board, method)["gain"] == pytest.approx(mean["fit-alone"] - mean[method])
    ranked = sorted(("fit-alone", "mimic", "shuffled"), key=mean.get)  # smallest error first
    assert [row(board, method)["rank"] for method in ranked] == [1, 2, 3]
    assert ranked[-1] == "shuffled"
    methods = [m for m in ranked if m != "fit-alone"]  # the baseline row is listed first, whatever its rank
    assert [out.index(printed[m]) for m in methods] == sorted(out.index(printed[m]) for m in methods)
    p_shuffled = stats.ttest_ind(mse["shuffled"], mse["mimic"], equal_var=False).pvalue
    p_alone = stats.ttest_ind(mse["fit-alone"], mse["mimic"], equal_var=False).pvalue
    assert row(board, "shuffled")["p_holm"] == pytest.approx(holm_of_two(p_shuffled, p_alone)[0])
    mae = [m["test_mae"] for m in logged["mimic"]]
    spread = stats.tstd(mae)
    assert cell(board, "mean |error|", "mimic") == f"{sum(mae) / 2:.4f} ± {spread:.4f}"
    assert f"{sum(mae) / 2:.4f} ± {spread:.4f}" in printed["mimic"]
    assert "against 'mimic' (curve-fitting)" in " ".join(footnotes(board))
    assert markdown.escape("mean |error| = mean absolute error (curve-fitting)") in markdown.render(board, "stamp")
