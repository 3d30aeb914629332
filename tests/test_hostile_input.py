"""Hostile input: every file in tests/hostile/ and every scenario below ends with exit code 2
and one line naming the problem — never a traceback, never a write outside the working
and cache folders. Each corpus file's first line says what the message must contain."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CORPUS = sorted(Path(__file__).with_name("hostile").glob("*.yaml"))


def expectation(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <text>'"
    return first.removeprefix("# expect: ")


def entries(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def assert_one_line_error(code: int, err: str, expected: str, after_progress: bool = False) -> None:
    """Exit 2 and one error line; ``after_progress``: the run had begun, so progress lines may precede it."""
    assert code == 2, err
    lines = err.splitlines()
    if after_progress:
        lines = lines[-1:]
        assert sum(line.startswith("kdbench: error: ") for line in err.splitlines()) == 1, err
    assert len(lines) == 1 and lines[0].startswith("kdbench: error: "), err
    assert "Traceback" not in err
    assert expected in err, err


@pytest.fixture
def untouched(isolated: Path):
    """Fails the test if anything appears beside the working and cache folders."""
    outside = isolated.parent
    before = {p for p in entries(outside) if p.parts[0] not in ("work", "cache")}
    yield
    after = {p for p in entries(outside) if p.parts[0] not in ("work", "cache")}
    assert after == before, f"written outside the working and cache folders: {after - before}"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_file_is_one_line_exit_2(path: Path, cli, untouched) -> None:
    assert_one_line_error(*cli("run", path)[::2], expectation(path))
    assert not list(Path("/").glob("tmp/evil*")) and not (Path.cwd() / "passwd").exists()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


def test_a_directory_or_missing_file_as_suite(cli, isolated: Path, untouched) -> None:
    assert_one_line_error(*cli("run", "suites.yaml")[::2], "no such suite file")
    (isolated / "dir.yaml").mkdir()
    assert_one_line_error(*cli("run", "dir.yaml")[::2], "no such suite file")


def test_unknown_plugin_module(cli, tiny_suite, untouched) -> None:
    code, _, err = cli("run", tiny_suite(), "--plugin", "kdbench_no_such_plugin")
    assert_one_line_error(code, err, "kdbench_no_such_plugin")


def test_truncated_dataset_file(cli, isolated: Path, require_data, monkeypatch: pytest.MonkeyPatch,
                                untouched) -> None:
    source = require_data("mnist", "t10k-labels-idx1-ubyte.gz")
    root = isolated.parent / "cache" / "data"
    shutil.copytree(source, root / "mnist")
    labels = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:100])
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    suite = isolated / "mnist.yaml"
    suite.write_text("name: m\ntasks: [mnist]\npairs: [{teacher: hinton-mlp-1200, student: mlp-30}]\n"
                     "methods: [kd]\n")
    assert_one_line_error(*cli("run", suite)[::2], "t10k-labels-idx1-ubyte.gz")


def test_corrupt_teacher_checkpoint(cli, tiny_suite, isolated: Path, untouched) -> None:
    suite = tiny_suite(methods="[kd]")
    assert cli("run", suite)[0] == 0
    (checkpoint,) = (isolated.parent / "cache" / "teachers").glob("*.pt")
    checkpoint.write_bytes(b"not a checkpoint")
    code, _, err = cli("run", tiny_suite(methods="[kd, dkd]"))  # dkd loads the cached teacher
    assert_one_line_error(code, err, "is corrupt", after_progress=True)
    assert str(checkpoint) in err
