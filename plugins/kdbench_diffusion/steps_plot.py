"""The plot step distillation is judged by: Fréchet distance against the number of sampling steps.

One line per method (mean ± std over seeds at N = 1, 2, 4, 8), the teacher at its own step
count as a star and a dashed level, both axes logarithmic: a 1-step DDIM sample is an order
of magnitude worse than a distilled one, and the halvings of N are the x axis' natural unit.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from kdbench_diffusion.columns import fd_by_steps, row_runs, step_counts

CAPTION = ("Fréchet distance against sampling steps N (mean ± std over seeds, log–log); the teacher "
           "at its own step count as a star and a dashed level")


def fd_against_steps(runs: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[str, str, Figure]] | None:
    counts = step_counts(runs)
    rows = rows[rows["status"] == "ok"]
    if not counts or rows.empty:
        return None
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    by_id = runs.set_index("run_id")
    drawn = False
    for index, row in enumerate(rows.itertuples()):
        found = fd_by_steps(row_runs(by_id, list(row.run_ids)), counts)
        if not found:
            continue
        steps = sorted(found)
        means = [found[n].mean() for n in steps]
        spreads = [found[n].std() if len(found[n]) > 1 else 0.0 for n in steps]
        label = str(row.method).replace("$", r"\$")
        if row.role == "teacher":
            label = f"teacher ({', '.join(map(str, steps))} steps)"
            axis.errorbar(steps, means, yerr=spreads, fmt="*", color="black", markersize=12, capsize=3, label=label)
            for mean in means:
                axis.axhline(mean, linestyle="--", color="black", linewidth=1)
        else:
            axis.errorbar(steps, means, yerr=spreads, fmt="-o", color=f"C{index % 10}", capsize=3, label=label)
        drawn = True
    if not drawn:
        return None
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.xaxis.set_major_locator(FixedLocator(counts))
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_locator(NullLocator())
    axis.yaxis.set_major_formatter(ScalarFormatter())
    axis.set_xlabel("sampling steps N (log scale)")
    axis.set_ylabel("Fréchet distance, lower is better (log scale)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return [("fd-vs-steps", CAPTION, figure)]
