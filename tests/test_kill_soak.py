"""Kill -9 at random points (tests/benchmarks/bench_kill_soak.py): nothing lost, nothing doubled, nothing
corrupt, whenever ``kdbench run`` or ``kdbench tune`` is SIGKILLed.

The default run kills ``kdbench run`` five times in children forked from this (warmed) process; the
slow tests kill real ``kdbench`` processes twenty times each, as the benchmark script does.
"""

from __future__ import annotations

import pytest

from tests.benchmarks.bench_kill_soak import fork_launch, scratch, soak, subprocess_launch, warm_up


def test_five_random_kills_of_kdbench_run_lose_double_and_corrupt_nothing() -> None:
    with scratch() as root:
        warm_up(root)
        result = soak("run", 5, seed=0, launch=fork_launch, root=root)
    assert result.survived == 5, result.report()
    assert any(trial.landed for trial in result.trials), "no kill landed while the run was going: nothing was tested"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "tune"])
def test_twenty_random_kills_of_kdbench_processes_lose_double_and_corrupt_nothing(command: str) -> None:
    with scratch() as root:
        result = soak(command, 20, seed=0, launch=subprocess_launch, root=root)
    assert result.survived == 20, result.report()
    assert sum(trial.landed for trial in result.trials) >= 10, result.report()
