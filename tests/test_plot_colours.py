"""One colour per method on every plot (issue #17): by name, never by position in a group."""

from __future__ import annotations

import pandas as pd
from matplotlib.colors import to_hex

from kdbench.leaderboard import plots
from tests.synthetic_store import kinds


def group(task: str, methods: list[str]) -> pd.DataFrame:
    """A plotted group's rows: teacher, baseline, then ``methods``, each with made-up results."""
    names = ["teacher", "student-only", *methods]
    roles = ["teacher", "baseline", *["method"] * len(methods)]
    return pd.DataFrame({
        "task": task, "teacher": "big", "student": "small", "method": names, "role": roles, "status": "ok",
        "metric": "accuracy", "higher_is_better": True, "mean": [0.9, 0.8, *[0.85] * len(methods)],
        "std": 0.01, "params": [1e6, *[1e4] * (len(names) - 1)], "latency_ms": [2.0, *[0.5] * (len(names) - 1)],
        "run_ids": [[] for _ in names],
    })


def bar_colours(rows: pd.DataFrame) -> dict[str, str]:
    """The colour each method's bar is drawn in, read back from the figure."""
    figure = plots._bars(rows, plots._colours(rows))
    axis = figure.axes[0]
    labels = [tick.get_text() for tick in axis.get_xticklabels()]
    return dict(zip(labels, [to_hex(bar.get_facecolor(), keep_alpha=False) for bar in axis.patches], strict=True))


def tradeoff_colours(rows: pd.DataFrame) -> dict[str, str]:
    figure = plots._tradeoff(rows, plots._colours(rows))
    handles, labels = figure.axes[0].get_legend_handles_labels()
    return {label: to_hex(handle.lines[0].get_color()) for handle, label in zip(handles, labels, strict=True)}


def test_a_method_keeps_its_colour_across_groups_with_different_methods():
    first = group("toy", ["kd", "fitnets", "my-plugin-method", "kd[T=8]"])
    second = group("other", ["dkd", "my-plugin-method", "crd", "kd[T=8]", "kd"])  # other members, other order
    for drawn in (bar_colours, tradeoff_colours):
        a, b = drawn(first), drawn(second)
        shared = set(a) & set(b)
        assert {"kd", "my-plugin-method", "kd[T=8]"} <= shared
        assert all(a[name] == b[name] for name in shared), (a, b)
    line = tradeoff_colours(first)
    assert line["teacher"] == plots.TEACHER and line["student-only"] == plots.BASELINE


def test_colours_depend_on_the_name_only():
    assert plots.colour("my-plugin-method") == plots.colour("my-plugin-method", "method")
    assert plots.colour("kd") == plots.FIXED["kd"]
    assert plots.colour("teacher", "teacher") == plots.TEACHER
    assert plots.colour("a-new-baseline", "baseline") == plots.BASELINE
    assert plots.colour("ddim-n", "baseline") == plots.colour("student-only", "method") == plots.BASELINE
    hashed = {plots.colour(f"plugin-{i}") for i in range(200)}
    assert hashed <= set(plots.PALETTE) and len(hashed) > len(plots.PALETTE) // 2  # spread over the palette
    assert plots.TEACHER not in plots.PALETTE and plots.BASELINE not in plots.PALETTE


def test_every_built_in_method_has_its_own_fixed_colour():
    from kdbench.registry import Registry

    kinds()  # the built-in plugins, loaded as the leaderboard sees them
    baselines = {kind.baseline for kind in kinds().values()}
    methods = set(Registry.load().methods.entries) - baselines
    assert methods <= set(plots.BUILT_IN), sorted(methods - set(plots.BUILT_IN))
    fixed = [plots.colour(name) for name in plots.BUILT_IN]
    assert len(set(fixed)) == len(fixed), "two built-in methods share a colour"
    assert all(plots.colour(name, "baseline") == plots.BASELINE for name in baselines)
