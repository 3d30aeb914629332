"""MLflow tracking: one experiment per suite, one run per combination.

The default store is an embedded SQLite file in the working directory, so no server
is needed; ``MLFLOW_TRACKING_URI`` or ``--tracking-uri`` points kdbench at a real
server. The leaderboard reads only what this store holds.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdbench.errors import UserError
from kdbench.pids import alive

TAG = "kdbench."


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def absolute_sqlite(uri: str) -> str:
    """``sqlite:///runs.db`` with the path made absolute: workers started elsewhere (Ray's run in
    their own folders) must open the same file, and MLflow caches stores by URI within a process."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/") and ":memory:" not in uri:
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


@dataclass
class RunRecord:
    run_id: str
    status: str
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    start_time: int
    end_time: int | None


def trials_experiment(suite: str) -> str:
    """The experiment a suite's tuning trials are logged to: beside the suite's own, never in it, so
    no trial is ever read as one of its runs."""
    return f"{suite}-tune"


class Tracker:
    """A thin, explicit layer over ``MlflowClient`` (no fluent global state)."""

    def __init__(self, uri: str | None, experiment: str) -> None:
        self.uri = absolute_sqlite(uri or default_tracking_uri())
        _check_reachable(self.uri)
        if self.uri.startswith("sqlite:///") and ":memory:" not in self.uri:
            created_whole(Path(self.uri.removeprefix("sqlite:///")), _mlflow_schema)
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)

        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_name = experiment
        self.run_tags: dict[str, str] = {}
        """Tags given to every run this tracker starts from now on: where the runs compute (a Ray node),
        which the combination cannot know."""
        self._refresh()

    def ensure_experiment(self) -> str:
        if self.experiment_id is None:
            self._refresh()  # a parallel worker may have created it since
        if self.experiment_id is None:
            self.experiment_id = self.client.create_experiment(self.experiment_name)
        return self.experiment_id

    def _refresh(self) -> None:
        found = self.client.get_experiment_by_name(self.experiment_name)
        self.experiment_id = found.experiment_id if found else None

    def runs(self) -> list[RunRecord]:
        """Every active (not deleted) run of the suite's experiment."""
        if self.experiment_id is None:
            self._refresh()
        if self.experiment_id is None:
            return []
        records, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], max_results=1000, page_token=token)
            for run in page:
                records.append(
                    RunRecord(
                        run_id=run.info.run_id,
                        status=run.info.status,
                        tags=dict(run.data.tags),
                        metrics=dict(run.data.metrics),
                        params=dict(run.data.params),
                        start_time=run.info.start_time,
                        end_time=run.info.end_time,
                    )
                )
            token = page.token
            if not token:
                return records

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def start(self, name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        from mlflow.entities import Param, RunTag

        run = self.client.create_run(self.ensure_experiment(), run_name=name, tags={**tags, **self.run_tags})
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run.info.run_id, params=items[start : start + 100])
        self.client.log_batch(run.info.run_id, tags=[RunTag("mlflow.runName", name)])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_pictures(self, run_id: str, pictures: dict[str, bytes]) -> None:
        """Store PNG images as the run's ``pictures/`` artifacts."""
        self._log_files(run_id, "pictures", pictures)

    def pictures(self, run_id: str) -> dict[str, bytes]:
        """The run's ``pictures/`` artifacts, by file name."""
        return self._files(run_id, "pictures", ".png")

    def log_samples(self, run_id: str, samples: dict[str, str]) -> None:
        """Store text as the run's ``samples/`` artifacts, UTF-8 whatever the locale (generated text
        is anyone's language)."""
        self._log_files(run_id, "samples", {name: text.encode("utf-8") for name, text in samples.items()})

    def samples(self, run_id: str) -> dict[str, str]:
        """The run's ``samples/`` artifacts, by file name."""
        return {name: data.decode("utf-8") for name, data in self._files(run_id, "samples", ".txt").items()}

    def _log_files(self, run_id: str, folder: str, files: dict[str, bytes]) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as local:
            for name, data in files.items():
                path = Path(local) / name
                path.write_bytes(data)
                self.client.log_artifact(run_id, str(path), folder)

    def _files(self, run_id: str, folder: str, suffix: str) -> dict[str, bytes]:
        """The run's artifacts under ``folder`` whose names end in ``suffix``, by file name."""
        import tempfile

        names = [a.path for a in self.client.list_artifacts(run_id, folder) if a.path.endswith(suffix)]
        if not names:
            return {}
        with tempfile.TemporaryDirectory() as local:
            downloaded = Path(self.client.download_artifacts(run_id, folder, local))
            return {Path(name).name: (downloaded / Path(name).name).read_bytes() for name in names}

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)

    def delete(self, run_id: str) -> None:
        self.client.delete_run(run_id)


def created_whole(database: Path, create_schema: Callable[[str], None]) -> None:
    """Make the SQLite file ``database``, when it is missing, with its schema in full or not at all.

    MLflow and Optuna create their tables on first use, in many statements: a process killed among them
    leaves a file whose schema is neither absent nor current, which every later command refuses
    ("out-of-date database schema"). So ``create_schema`` (given a SQLite URL) builds it in a temporary
    file beside ``database``, which is then hard-linked into place: linking fails if another process
    made ``database`` meanwhile, whose file is kept. A killed creator leaves only its temporary file,
    named by host and pid, removed by the next creator on that host once the pid is gone.
    """
    if database.exists():
        return
    host = socket.gethostname().replace(".", "-")
    prefix = f".{database.name}.{host}."
    for left in database.parent.glob(f"{prefix}*.creating"):
        pid = left.name.removeprefix(prefix).split(".")[0]
        if pid.isdigit() and not alive(int(pid)):
            left.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(dir=database.parent, prefix=f"{prefix}{os.getpid()}.", suffix=".creating")
    os.close(handle)
    try:
        create_schema(f"sqlite:///{temporary}")
        try:
            os.link(temporary, database)
        except FileExistsError:
            pass  # made by another process meanwhile: theirs is the store
    finally:
        Path(temporary).unlink(missing_ok=True)


def _mlflow_schema(url: str) -> None:
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # the default experiment's artifact root as MLflow would set it; kdbench's own experiments take theirs
    # from the store each process opens, as before
    store = SqlAlchemyStore(url, str(Path(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH).resolve()))
    store.engine.dispose()



def _check_reachable(uri: str) -> None:
    """Fail in one line, before any training, when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
            response.read()
    except OSError as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"MLflow tracking server {uri} is unreachable ({reason})") from None
