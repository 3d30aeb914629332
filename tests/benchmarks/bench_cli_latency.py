"""CLI latency: how long the answers that need no training take, against starting Python at all.

``kdbench --help``, ``kdbench list`` (a warm declarations snapshot) and a suite that fails validation
— a misspelt field, and a method name no plugin declares — must answer without importing torch
or any plugin (target ≤ 1 s each on this machine). Each command runs ``ROUNDS`` times (default 5)
in a fresh process, interleaved, with its own temporary cache; the figure is the median, also as
a ratio to ``python -c pass`` timed in the same rounds.
Run: ``python -m tests.benchmarks.bench_cli_latency``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = int(os.environ.get("ROUNDS", "5"))
TARGET_S = 1.0

SUITE = """name: {name}
tasks: [mnist]
pairs: [{{teacher: hinton-mlp-1200, student: hinton-mlp-800}}]
methods: [{method}]
{extra}
"""


def timed(command: list[str], env: dict[str, str], expect: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(command)}: exit {done.returncode}, expected {expect}\n{done.stderr}")
    return elapsed


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="kdbench-bench-cli-"))
    try:
        measure(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(folder: Path) -> None:
    env = {**os.environ, "KDBENCH_CACHE": str(folder / "cache")}
    misspelt = folder / "misspelt-field.yaml"
    misspelt.write_text(SUITE.format(name="misspelt-field", method="kd", extra="seedz: [0, 1]"))
    unknown = folder / "unknown-method.yaml"
    unknown.write_text(SUITE.format(name="unknown-method", method="kdd", extra=""))
    kdbench = [sys.executable, "-m", "kdbench.cli"]
    commands = {
        "python -c pass": ([sys.executable, "-c", "pass"], 0),
        "kdbench --help": ([*kdbench, "--help"], 0),
        "kdbench list (warm snapshot)": ([*kdbench, "list"], 0),
        "kdbench run (misspelt field)": ([*kdbench, "run", str(misspelt)], 2),
        "kdbench run (unknown method)": ([*kdbench, "run", str(unknown)], 2),
    }
    cold = timed([*kdbench, "list"], env, 0)  # loads every plugin and writes the snapshot the others read
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(ROUNDS):
        for name, (command, expect) in commands.items():
            times[name].append(timed(command, env, expect))
    base = statistics.median(times["python -c pass"])
    print(f"median of {ROUNDS} interleaved rounds, each a fresh process with a temporary KDBENCH_CACHE")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = "" if name == "python -c pass" else ("   ok" if median <= TARGET_S else "   OVER TARGET")
        print(f"{name:<30} {median:6.3f} s   {median / base:6.1f}x python -c pass{verdict}")
    print(f"{'kdbench list (cold, once)':<30} {cold:6.3f} s   {cold / base:6.1f}x python -c pass   (full load, "
          "writes the snapshot)")
    print(f"target: each kdbench command above <= {TARGET_S:g} s")


if __name__ == "__main__":
    main()
