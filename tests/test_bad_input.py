"""What a new user runs into, each a one-line error with exit code 2 before anything trains: suites
too big or mistyped, folders kdbench cannot write; a plugin environment `kdbench list` must name; a
failed run's line, printed once, naming where its traceback is."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from kdbench.suite import MAX_FILE_BYTES, MAX_RUNS, MAX_TEXT
from tests.conftest import TINY_DIGITS, write_suite

GOOD = TINY_DIGITS.format(name="bad", seeds=1, methods="[student-only, kd]")


def mutate(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of ``text`` that holds ``fragment``."""
    return next(n for n, line in enumerate(text.splitlines(), start=1) if fragment in line)


def grid(values: int) -> str:
    return ", ".join(str(v) for v in range(1, values + 1))


BILLION = mutate("seeds: 1", "seeds: 1000").replace(
    "methods: [student-only, kd]",
    f"methods: [student-only, {{name: kd, grid: {{T: [{grid(1000)}], "
    f"alpha: [{', '.join(str(v / 1000) for v in range(1, 1000))}]}}}}]")
UNCLOSED = mutate("methods: [student-only, kd]", "methods: [student-only, kd")
CASES = {
    # 1000 seeds × (the teacher, student-only, and kd's 1000 × 999 grid points)
    "a billion runs": (BILLION, [f"expands to {1000 * (1 + 1 + 1000 * 999):,} runs", f"{MAX_RUNS:,}"]),
    "unknown metric": (GOOD + "metric: acuracy\n", ["metric: unknown metric of task digits",
                                                    "did you mean 'accuracy'?"]),
    "a method listed twice": (mutate("[student-only, kd]", "[student-only, kd, kd]"),
                              ["methods[2]: method 'kd' is listed twice: methods[1] runs the same parameters"]),
    "a grid value listed twice": (mutate("[student-only, kd]", "[student-only, {name: kd, grid: {T: [2, 4, 2]}}]"),
                                  ["methods[1]: method 'kd' with T=2 appears twice in its grid"]),
    "a seed listed twice": (mutate("seeds: 1", "seeds: [3, 5, 3]"), ["seeds: seed 3 is listed twice"]),
    "a long description": (GOOD + f"description: {'x' * (MAX_TEXT + 1)}\n",
                           [f"description: {MAX_TEXT + 1:,} characters", f"at most {MAX_TEXT:,}"]),
    "a long name deep inside": (mutate("[student-only, kd]", f"[student-only, {'k' * (MAX_TEXT + 5)}]"),
                                [f"methods[1]: {MAX_TEXT + 5:,} characters"]),
    "a misspelt field": (GOOD.replace("recipe:", "recipie:"),
                         ["recipie: unknown field 'recipie'; did you mean 'recipe'?"]),
    "seeds as a word": (mutate("seeds: 1", 'seeds: "three"'),
                        ["seeds: expected a count of seeds (an integer) or a list of integer seeds (got 'three')"]),
    "an unclosed bracket": (UNCLOSED, [f".yaml:{line_of(UNCLOSED, 'methods: [')}:10: invalid YAML: parsing a flow "
                                       "sequence that starts here is not closed"]),
}


def assert_refused(code: int, out: str, err: str, fragments: list[str], isolated: Path) -> None:
    """Exit 2, one line naming the problem, no traceback, and nothing trained."""
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("kdbench: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in out + err
    assert not list((isolated.parent / "cache").glob("teachers/*.pt")), "a teacher was trained"
    database = isolated / "mlflow.db"
    if database.exists():
        client = MlflowClient(tracking_uri=f"sqlite:///{database}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()]), "a run was started"


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_suite_is_refused_in_one_line(case: str, cli, isolated: Path) -> None:
    text, fragments = CASES[case]
    path = write_suite(isolated / "bad.yaml", text)
    assert_refused(*cli("run", path), [f"kdbench: error: {path}", *fragments], isolated)


def test_a_suite_file_too_large_is_refused_unread(cli, isolated: Path) -> None:
    path = write_suite(isolated / "bad.yaml", GOOD + "#" * MAX_FILE_BYTES + "\n")
    assert_refused(*cli("run", path), [f"{path.stat().st_size:,} bytes", f"at most {MAX_FILE_BYTES:,}"], isolated)


def test_the_run_cap_admits_exactly_its_count(isolated: Path) -> None:
    """100 seeds × (the teacher, student-only and a grid of 98) is the cap; one more grid point is over it."""
    from kdbench.errors import SuiteError
    from kdbench.registry import Registry
    from kdbench.suite import load_suite, run_count

    registry = Registry.load()
    seeds = 100
    points = MAX_RUNS // seeds - 2
    at_cap = mutate("seeds: 1", f"seeds: {seeds}").replace(
        "[student-only, kd]", f"[student-only, {{name: kd, grid: {{T: [{grid(points)}]}}}}]")
    assert run_count(load_suite(write_suite(isolated / "cap.yaml", at_cap), registry)) == MAX_RUNS
    over = at_cap.replace(f"T: [{grid(points)}]", f"T: [{grid(points + 1)}]")
    with pytest.raises(SuiteError, match=f"expands to {MAX_RUNS + seeds:,} runs"):
        load_suite(write_suite(isolated / "over.yaml", over), registry)


def writable(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.fixture
def read_only():
    """Makes folders no one can write to: by their mode, or for root (whom modes do not stop) by the
    immutable attribute; skips where neither holds. Undone afterwards, so the folders can be removed."""
    made: list[Path] = []
    chattr = shutil.which("chattr")

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        if writable(folder) and chattr:
            subprocess.run([chattr, "+i", str(folder)], capture_output=True)
        if writable(folder):
            pytest.skip(f"cannot make {folder} read-only here (root, and no immutable attribute)")
        return folder

    yield make
    for folder in made:
        if chattr:
            subprocess.run([chattr, "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


def test_a_cache_that_cannot_be_made(cli, tiny_suite, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = isolated / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KDBENCH_CACHE", str(blocker / "cache"))
    assert_refused(*cli("run", tiny_suite()), [f"KDBENCH_CACHE {blocker / 'cache'}: cannot be made"], isolated)
    assert not (isolated / "mlflow.db").exists(), "the cache is checked before the store is opened"


def test_a_read_only_teacher_cache_is_refused_before_teachers_train(cli, tiny_suite, isolated: Path,
                                                                    read_only) -> None:
    teachers = read_only(isolated.parent / "cache" / "teachers")
    assert_refused(*cli("run", tiny_suite()), [f"the cache (KDBENCH_CACHE) {teachers} is not writable"], isolated)


def test_a_read_only_mlflow_store_folder(cli, tiny_suite, isolated: Path, read_only) -> None:
    folder = read_only(isolated / "store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    assert_refused(*cli("run", tiny_suite(), "--tracking-uri", uri), [f"the MLflow store's folder {folder} is not "
                                                                     "writable"], isolated)


def test_a_read_only_artifact_root(cli, tiny_suite, isolated: Path, read_only) -> None:
    from kdbench.tracking import Tracker

    root = read_only(isolated / "artifacts")
    Tracker(f"sqlite:///{isolated / 'mlflow.db'}", "tiny").client.create_experiment("tiny",
                                                                                   artifact_location=root.as_uri())
    assert_refused(*cli("run", tiny_suite()), [f"the MLflow artifact root {root} is not writable"], isolated)


def test_python_m_kdbench_is_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "kdbench", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kdbench ") and " plan " in result.stdout


@pytest.fixture
def installed_plugin(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    """A distribution on ``sys.path`` whose ``kdbench`` entry point 'roster' registers a method: a plugin
    package as ``pip install`` leaves it."""
    site = isolated / "site"
    info = site / "kdbench_roster-2.5.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kdbench-roster\nVersion: 2.5\n")
    (info / "entry_points.txt").write_text("[kdbench]\nroster = roster_plugin\n")
    (site / "roster_plugin.py").write_text(
        "from kdbench import Method, hookimpl\n\n\nclass Roster(Method):\n    name = 'roster'\n"
        "    kinds = ('classification',)\n    needs = 'none'\n\n\n"
        "@hookimpl\ndef kdbench_methods():\n    return [Roster]\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("roster_plugin", None)


def test_list_names_its_environment_and_the_distributions_it_loaded(cli, installed_plugin, entry_point_plugins,
                                                                     isolated: Path) -> None:
    extra = isolated / "one_file_plugin.py"
    extra.write_text("")
    code, out, _ = cli("list", "methods", "--plugin", extra)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"python environment: {sys.prefix} ({sys.executable})"
    assert lines[1].startswith("plugins loaded: ")
    sources = dict(part.rstrip(")").split(" (", 1) for part in lines[1].removeprefix("plugins loaded: ").split("; "))
    assert sources["kdbench-roster==2.5"] == "roster"
    assert "methods" in sources[f"kdbench=={importlib.metadata.version('kdbench')}"].split(", ")
    assert sources[f"not installed: {extra}"] == "one_file_plugin"
    assert " roster " in out


BOOM_PLUGIN = """
from kdbench import Method, hookimpl


class Boom(Method):
    name = "boom"
    kinds = ("classification",)
    scheme = "none"
    needs = "none"

    def loss(self, batch, student, teachers):
        raise ValueError("boom on purpose")


@hookimpl
def kdbench_methods():
    return [Boom]
"""


def test_a_failed_run_is_printed_once_with_its_traceback_artifact(cli, tiny_suite, isolated: Path) -> None:
    from kdbench.runner import TRACEBACK_ARTIFACT

    plugin = isolated / "boom_plugin.py"
    plugin.write_text(BOOM_PLUGIN)
    code, out, err = cli("run", tiny_suite(methods="[boom]"), "--plugin", plugin)
    assert code == 1
    failed = [line for line in (out + err).splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1, out + err  # on stdout, after the board (which lists it too, as a row)
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id], "attributes.status = 'FAILED'")
    assert failed[0] == (f"FAILED digits · mlp-30 · boom · seed 0: ValueError: boom on purpose "
                         f"(traceback: MLflow artifact runs:/{run.info.run_id}/{TRACEBACK_ARTIFACT})")
    trace = client.download_artifacts(run.info.run_id, TRACEBACK_ARTIFACT, str(isolated))
    assert "Traceback" in Path(trace).read_text() and "boom on purpose" in Path(trace).read_text()
