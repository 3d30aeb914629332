"""The ``kdbench`` command. User errors print one line and exit with code 2."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import urllib.parse
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from kdbench.errors import IncompatibleCombination, SuiteError, UserError

if TYPE_CHECKING:
    import torch

    from kdbench.executors import Placement, Workers
    from kdbench.plan import Combination
    from kdbench.registry import Registry
    from kdbench.runner import Outcome
    from kdbench.suite import Suite
    from kdbench.teacher_cache import TeacherCache
    from kdbench.tracking import RunRecord, Tracker


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    signal.signal(signal.SIGTERM, _interrupt)  # a polite kill stops like Ctrl-C: the current run is marked KILLED
    # publishing downloads every row's pictures and samples: MLflow's bar per download would bury our own output
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return args.handler(args)
    except UserError as error:
        print(f"kdbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdbench: interrupted", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdbench", description="Benchmark knowledge distillation methods.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_plugins(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                             help="load one more plugin (a module name or a .py file); repeatable")
        return command

    def with_executor(command: argparse.ArgumentParser) -> None:
        command.add_argument("--executor", choices=["inprocess", "process", "ray"], default="inprocess",
                             help="where runs execute: this process (default), a local process pool, or Ray")
        command.add_argument("--max-parallel", type=int, default=None, metavar="N",
                             help="runs at once for process/ray (default: the number of cores); each gets cores/N "
                                  "threads unless KDBENCH_THREADS says otherwise")
        command.add_argument("--address",
                             help="Ray cluster address (ray://host:port or auto); default: start Ray locally")
        command.add_argument("--device", default="auto",
                             help="auto (CUDA when there is one, else the CPU), cpu, cuda or cuda:N; the process "
                                  "pool gives each worker one GPU in turn")
        command.add_argument("--gpus-per-run", type=float, default=None, metavar="G",
                             help="with --executor ray: the GPUs each run reserves (fractions share a GPU; "
                                  "default 1 with --device cuda)")

    def with_probe(command: argparse.ArgumentParser) -> None:
        command.add_argument("--no-probe", action="store_true",
                             help="with a plan: estimate from recorded runs only, without timing one epoch of the "
                                  "others")

    run = with_plugins(sub.add_parser("run", help="run a suite"))
    run.add_argument("suite", help="a suite file, or the name of one in suites/")
    run.add_argument("--rerun", action="store_true", help="run again combinations that already finished")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)")
    with_executor(run)
    run.add_argument("--tuned", action="store_true",
                     help="run every method at the values `kdbench tune` chose for it (its own runs, apart from the "
                          "untuned ones)")
    run.add_argument("--storage", help="the tuning studies' RDB URL (default: optuna.db beside the MLflow store)")
    run.add_argument("--dry-run", action="store_true",
                     help="train nothing: print what `kdbench plan` prints (each run's state and the estimated time)")
    with_probe(run)
    run.set_defaults(handler=_run)

    plan = with_plugins(sub.add_parser(
        "plan", help="what `run` would do: every run's state and an estimate of the wall time; trains nothing"))
    plan.add_argument("suite", help="a suite file, or the name of one in suites/")
    plan.add_argument("--rerun", action="store_true", help="plan as `run --rerun` would run")
    plan.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)")
    plan.add_argument("--max-parallel", type=int, default=None, metavar="N",
                      help="also estimate N runs at once (default: the number of cores)")
    plan.add_argument("--device", default="auto", help="the device the runs would train on: auto, cpu, cuda or cuda:N")
    with_probe(plan)
    plan.set_defaults(handler=_plan, executor="inprocess", address=None, tuned=False)

    tune = with_plugins(sub.add_parser(
        "tune", help="search every method's hyper-parameters, the baseline's too, with one budget, on val only"))
    tune.add_argument("suite", help="a suite file, or the name of one in suites/")
    tune.add_argument("--trials", type=int, default=None, metavar="N",
                      help="trials per method (default: the suite's tune.trials, else 12)")
    tune.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)")
    tune.add_argument("--storage", help="RDB URL for the studies, e.g. postgresql://… (default: optuna.db beside "
                                        "the MLflow store)")
    with_executor(tune)
    tune.set_defaults(handler=_tune)

    listing = with_plugins(sub.add_parser("list", help="list what the plugins offer"))
    listing.add_argument("what", nargs="?", default="all",
                         choices=["all", "tasks", "teachers", "students", "methods", "transforms", "datasets",
                                  "suites"])
    listing.set_defaults(handler=_list)

    board = with_plugins(sub.add_parser("leaderboard", help="print a suite's results from MLflow"))
    board.add_argument("suite")
    board.add_argument("--tracking-uri")
    board.add_argument("--tuned", action="store_true", help="the runs at tuned values (default: the untuned ones)")
    board.set_defaults(handler=_leaderboard)

    publish = with_plugins(sub.add_parser(
        "publish", help="write suites' leaderboards (md, html, csv, json, png) and an index"))
    publish.add_argument("suites", nargs="+", metavar="suite")
    publish.add_argument("--out", type=Path, default=Path("results"),
                         help="folder for <suite>/ and the index (default: results)")
    publish.add_argument("--tracking-uri")
    publish.add_argument("--allow-dirty", action="store_true",
                         help="publish suites whose runs were made from uncommitted code (refused otherwise); "
                              "their pages say so")
    publish.add_argument("--tuned", action="store_true",
                         help="the pages show the runs at tuned values, the untuned ones as a second table")
    publish.set_defaults(handler=_publish)

    data = sub.add_parser("data", help="dataset files")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = with_plugins(data_sub.add_parser("fetch", help="download a dataset's canonical files"))
    fetch.add_argument("name")
    fetch.set_defaults(handler=_fetch)
    return parser


def suites_dirs() -> list[Path]:
    """Where suite names are looked up: ./suites, then the checkout's suites/."""
    return [Path.cwd() / "suites", Path(__file__).resolve().parent.parent / "suites"]


def resolve_suite(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    for folder in suites_dirs():
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    from kdbench.registry import unknown_name_message

    raise UserError(unknown_name_message("suite", name, known_suites()))


def known_suites() -> list[str]:
    return sorted({p.stem for folder in suites_dirs() if folder.is_dir() for p in folder.glob("*.yaml")})


def _registry(args: argparse.Namespace, key: str | None = None) -> Registry:
    """Every plugin loaded (torch with them). What they declare is written to the declarations snapshot when
    the one there is not for these plugins (``key``: their fingerprint, when already computed) and every
    plugin imported; when one failed, the snapshot is removed, so the next command says so too."""
    from kdbench import declarations
    from kdbench.plugin_manager import PluginLoadWarning
    from kdbench.registry import Registry

    key = key or declarations.fingerprint(args.plugin)  # before loading: a file changed meanwhile is stale next time
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginLoadWarning)
        registry = Registry.load(args.plugin)
    failed = [warning for warning in caught if issubclass(warning.category, PluginLoadWarning)]
    for warning in failed:
        print(f"kdbench: warning: {warning.message}", file=sys.stderr)
    if failed:
        declarations.remove()
    elif declarations.read(key) is None:
        declarations.write(declarations.Declarations.of(registry), key)
    return registry


class _Plugins:
    """A command's plugins, loaded when first needed: its suites are read and checked before, as far as
    they can be without them (their fields, then their names against a fresh declarations snapshot)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from kdbench import declarations

        self.args = args
        self.key = declarations.fingerprint(args.plugin)
        self.snapshot = declarations.read(self.key)
        self.registry: Registry | None = None

    def load(self) -> Registry:
        if self.registry is None:
            self.registry = _registry(self.args, self.key)
        return self.registry

    def suite(self, name: str) -> tuple[Path, Suite]:
        from kdbench.suite import load_suite

        path = resolve_suite(name)
        return path, load_suite(path, self.load, self.snapshot.names() if self.snapshot else None)


def _placement(args: argparse.Namespace) -> tuple[torch.device, Placement]:
    """The device this process trains on (in-process runs) and where the executor's workers compute;
    both checked before anything runs, so a device the machine lacks is a one-line error."""
    import torch

    from kdbench.device import resolve
    from kdbench.executors import Placement

    if args.executor == "inprocess":
        if args.gpus_per_run is not None:
            raise UserError("--gpus-per-run is for --executor ray")
        return resolve(args.device), Placement()
    return torch.device("cpu"), Placement.of(args.executor, args.device, args.gpus_per_run)


def _expand(path: Path, suite: Suite, registry: Registry) -> list[Combination]:
    """The suite's combinations, built before any store is opened; a suite its tasks cannot honour
    (a recipe they cannot follow) is reported against its file, like any other suite error."""
    from kdbench.plan import expand, task_instances

    try:
        return expand(suite, registry, task_instances(suite, registry))
    except SuiteError as error:
        raise SuiteError(f"{path}: {error}") from None


def _run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _plan(args)
    max_parallel = _max_parallel(args)
    plugins = _Plugins(args)
    path, suite = plugins.suite(args.suite)  # before torch, the plugins and the modules below are imported
    from kdbench.tracking import absolute_sqlite, default_tracking_uri

    uri = absolute_sqlite(args.tracking_uri or default_tracking_uri())
    storage = None
    if args.tuned:
        from kdbench.tuning import storage_url

        storage = args.storage or storage_url(uri)
    device, placement = _placement(args)
    workers = None
    if args.executor != "inprocess":  # warming while this process plans; released below if nothing is left to run
        from kdbench.executors import start_workers

        workers = start_workers(args.executor, path, args.plugin, max_parallel, uri, suite.name, address=args.address,
                                storage=storage, placement=placement, rerun=args.rerun)
    try:
        return _run_started(args, path, suite, plugins, uri, storage, device, workers)
    finally:
        if workers is not None:
            workers.close()


def _run_started(args: argparse.Namespace, path: Path, suite: Suite, plugins: _Plugins, uri: str, storage: str | None,
                 device: torch.device, workers: Workers | None) -> int:
    registry = plugins.load()
    from kdbench.console import WIDTH, RichProgress, summary_table
    from kdbench.leaderboard.board import load_board
    from kdbench.leaderboard.store import protocol, protocol_runs
    from kdbench.runner import Runner

    console = Console(width=max(Console().width, WIDTH))
    combinations = _expand(path, suite, registry)
    tracker, cache = _writable_places(uri, suite.name)
    if args.tuned:
        from kdbench.tuning import tuned

        combinations = tuned(suite, combinations, storage)
    # failures are listed once, after the board, with where their tracebacks are
    with RichProgress(Console(stderr=True), total=len(combinations), live_failures=False) as progress:
        runner = Runner(registry, tracker, cache, progress=progress, rerun=args.rerun, device=device)
        todo, done = runner.pending(combinations)
        if done:
            progress.note(f"{len(done)}/{len(combinations)} runs already finished, skipped"
                          + (" (--rerun runs them again)" if not todo else ""))
            progress.bars.advance(progress.overall, len(done))
        executor = runner
        if workers is not None and todo:
            from kdbench.executors import parallel_runner

            executor = parallel_runner(runner, workers)
        interrupted = False
        try:
            outcomes = executor.run(todo)
        except KeyboardInterrupt:  # the current runs are already marked KILLED; report what got done
            interrupted, outcomes = True, executor.outcomes
    board = load_board(suite.name, protocol_runs(tracker.runs(), args.tuned), registry.kinds.entries, suite.metric,
                       suite.paper, registry.manager.hook, protocol(tracker.runs(), args.tuned), tracker.history)
    console.print(summary_table(board))
    failed = [o for o in outcomes if o.status == "FAILED"]
    skipped = [o for o in outcomes if o.status == "N/A"]
    for outcome in skipped:
        console.print(f"n/a  {outcome.combination.label}: {outcome.error}", markup=False, highlight=False)
    ran = len(outcomes) - len(skipped)
    console.print(f"{ran - len(failed)} finished, {len(failed)} failed, {len(skipped)} n/a, {len(done)} skipped "
                  f"(tracking: {tracker.uri}, experiment '{suite.name}')", markup=False, highlight=False)
    for line in _failure_lines(failed, tracker):
        console.print(line, markup=False, highlight=False, soft_wrap=True)  # a runs:/ URI to copy whole
    if interrupted:
        console.print("interrupted: the run in progress is marked KILLED and runs again next time",
                      markup=False, highlight=False)
        return 130
    return 1 if failed else 0


def _max_parallel(args: argparse.Namespace) -> int:
    max_parallel = args.max_parallel if args.max_parallel is not None else (os.cpu_count() or 1)
    if max_parallel < 1:
        raise UserError(f"--max-parallel must be at least 1, got {max_parallel}")
    if args.address and args.executor != "ray":
        raise UserError("--address is for --executor ray")
    return max_parallel


def _writable_places(uri: str | None, experiment: str, writes_to: str | None = None) -> tuple[Tracker, TeacherCache]:
    """The suite's tracker and the teacher cache, once every folder a run writes to is known to take a
    file: the cache (``KDBENCH_CACHE``, its ``teachers/`` too), an embedded store's folder and file, and
    the artifact root of ``writes_to`` (the experiment the runs go to; default ``experiment``) when it is
    on this machine — so a read-only one is a one-line error before the first run, not a traceback, nor
    teachers trained for minutes and then refused at save. Only ``writes_to`` is created if missing."""
    from kdbench.teacher_cache import TeacherCache
    from kdbench.tracking import Tracker, absolute_sqlite, default_tracking_uri

    root = _cache_root()
    for folder in (root, root / "teachers"):
        _check_writable(folder, "the cache (KDBENCH_CACHE)")
    uri = absolute_sqlite(uri or default_tracking_uri())
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        _check_writable(database.parent, "the MLflow store's folder")
        if database.is_file():
            try:
                with open(database, "r+b"):
                    pass
            except OSError as error:
                raise UserError(f"the MLflow store {database} is not writable ({error.strerror})") from None
    tracker = Tracker(uri, experiment)
    written = tracker if writes_to in (None, experiment) else Tracker(uri, writes_to)
    location = urllib.parse.urlparse(written.client.get_experiment(written.ensure_experiment()).artifact_location)
    if location.scheme in ("", "file"):  # a server's proxied or remote artifact store is the server's to check
        _check_writable(Path(urllib.parse.unquote(location.path)), "the MLflow artifact root")
    return tracker, TeacherCache(root)


def _cache_root() -> Path:
    """``KDBENCH_CACHE``, made if missing; one that cannot be made is a one-line error."""
    from kdbench.data_root import cache_dir

    try:
        return cache_dir()
    except OSError as error:
        raise UserError(f"KDBENCH_CACHE {error.filename}: cannot be made ({error.strerror}); point KDBENCH_CACHE at "
                        "a folder you can write") from None


def _check_writable(folder: Path, what: str) -> None:
    """Fail in one line unless a file can be made in ``folder`` (made first, when missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kdbench-write-check-"):
            pass
    except OSError as error:
        raise UserError(f"{what} {folder} is not writable ({error.strerror or error})") from None


def _failure_lines(failed: list[Outcome], tracker: Tracker) -> list[str]:
    """One line per failed run: its reason, and the MLflow artifact holding its traceback when it has one
    (a run whose worker died has none)."""
    if not failed:
        return []
    from kdbench.runner import TRACEBACK_ARTIFACT

    latest: dict[str, RunRecord] = {}
    for record in tracker.runs():
        key = record.tags.get("kdbench.config_hash", "")
        if record.status == "FAILED" and (key not in latest or record.start_time > latest[key].start_time):
            latest[key] = record
    lines = []
    for outcome in failed:
        line = f"FAILED {outcome.combination.label}: {outcome.error}"
        record = latest.get(outcome.combination.key)
        if record is not None and TRACEBACK_ARTIFACT in {a.path for a in tracker.client.list_artifacts(record.run_id)}:
            line += f" (traceback: MLflow artifact runs:/{record.run_id}/{TRACEBACK_ARTIFACT})"
        lines.append(line)
    return lines


def _plan(args: argparse.Namespace) -> int:
    """Every run's state and the estimated wall time, from the store and the cache as they are: nothing
    trains, no run or checkpoint is written to either (a probe's go to a temporary folder; the plugins'
    declarations snapshot is written as by every command that loads them)."""
    if args.tuned:
        raise UserError("--dry-run does not plan --tuned runs")
    max_parallel = _max_parallel(args)
    plugins = _Plugins(args)
    path, suite = plugins.suite(args.suite)  # before torch, the plugins and the modules below are imported
    registry = plugins.load()
    from kdbench.console import WIDTH, plan_table
    from kdbench.device import resolve
    from kdbench.estimate import CacheView, Prober, plan, store_runs
    from kdbench.tracking import absolute_sqlite, default_tracking_uri

    combinations = _expand(path, suite, registry)
    device = resolve(args.device)
    uri = absolute_sqlite(args.tracking_uri or default_tracking_uri())
    records, history = store_runs(uri, suite.name)
    notes = Console(stderr=True)
    with Prober(registry, device, lambda text: notes.print(text, markup=False, highlight=False)) as prober:
        planned = plan(combinations, records, history, CacheView(_cache_root()), args.rerun, device,
                       None if args.no_probe else prober)
    Console(width=max(Console().width, WIDTH)).print(plan_table(suite.name, planned, max_parallel, uri))
    return 0


def _tune(args: argparse.Namespace) -> int:
    max_parallel = _max_parallel(args)
    plugins = _Plugins(args)
    path, suite = plugins.suite(args.suite)  # before torch, the plugins and the modules below are imported
    registry = plugins.load()
    from kdbench.console import RichProgress
    from kdbench.runner import Runner
    from kdbench.tracking import Tracker, trials_experiment
    from kdbench.tuning import Tuning, best, storage_url, studies, tune

    trials = args.trials if args.trials is not None else suite.tune.trials
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    combinations = _expand(path, suite, registry)
    # the trials' experiment is the one sure to be written; the suite's holds teachers, when any must train
    tracker, cache = _writable_places(args.tracking_uri, suite.name, trials_experiment(suite.name))
    storage = args.storage or storage_url(tracker.uri)
    chosen = studies(suite, combinations)
    teachers = list({t.key: t for study in chosen for t in study.combination.teachers}.values())
    console = Console(width=max(Console().width, 140))
    given_up: dict[str, str] = {}
    device, placement = _placement(args)
    # a failed teacher is listed at the end, with its traceback; a failed trial as it happens
    with RichProgress(Console(stderr=True), total=len(teachers) + trials * len(chosen),
                      live_failures=False) as progress:
        runner = Runner(registry, tracker, cache, progress=progress, device=device)
        todo, done = runner.pending(teachers)  # teachers are trained by their own runs, once
        progress.bars.advance(progress.overall, len(done))
        parallel = args.executor != "inprocess"
        if parallel and todo:
            from kdbench.executors import parallel_runner, start_workers

            outcomes = parallel_runner(runner, start_workers(args.executor, path, args.plugin, max_parallel,
                                                             tracker.uri, suite.name, address=args.address,
                                                             placement=placement)).run(todo)
        else:
            outcomes = runner.run(todo)
        failed = [o for o in outcomes if o.status != "FINISHED"]
        if failed:
            for line in _failure_lines(failed, tracker):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            return 1
        progress.live_failures = True
        trial_runner = Runner(registry, Tracker(tracker.uri, trials_experiment(suite.name)), cache, progress=progress,
                              device=device)
        tuning = Tuning(chosen, storage, trials, suite.tune.seed, suite.tune.epochs, trial_runner.tracker)
        if parallel:
            from kdbench.executors import start_workers, trial_scheduler

            scheduler = trial_scheduler(trial_runner, tuning, start_workers(
                args.executor, path, args.plugin, max_parallel, tracker.uri, trial_runner.tracker.experiment_name,
                address=args.address, placement=placement))
            scheduler.run()
            given_up = scheduler.given_up
        else:
            tune(tuning, trial_runner)
    table = Table(title=f"{suite.name} — tuned: {trials} trials per method on val, TPE (seed {suite.tune.seed})")
    for column in ("study", "trials", "val at defaults", "best val", "chosen values"):
        table.add_column(column)
    for study in chosen:
        try:
            values, note = best(study, storage)
        except IncompatibleCombination as reason:  # found out by its first trial: no setting runs it
            table.add_row(study.label, "1", "n/a", "n/a", f"n/a: {reason}")
            continue
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        default = "n/a" if note["val_defaults"] is None else f"{note['val_defaults']:.4f}"
        table.add_row(study.label, str(note["trials"]), default, f"{note['val']:.4f}", shown or "(nothing to search)")
    console.print(table)
    console.print(f"studies: {storage}; trials: MLflow experiment '{trials_experiment(suite.name)}' at {tracker.uri}",
                  markup=False, highlight=False)
    for label, reason in given_up.items():
        console.print(f"FAILED {label}: {reason}", markup=False, highlight=False)
    return 1 if given_up else 0


def _list(args: argparse.Namespace) -> int:
    from kdbench import declarations

    key = declarations.fingerprint(args.plugin)
    declared = declarations.read(key)  # a fresh snapshot answers without loading any plugin
    if declared is None:
        registry = _registry(args, key)
        declared = declarations.read(key) or declarations.Declarations.of(registry)
    console = Console()
    # a plugin installed in another environment (a venv whose own kdbench is not the one on PATH) is
    # missing without a word: say which environment this is and what it loaded
    loaded = "; ".join(f"{source} ({', '.join(names)})" for source, names in declared.sources.items())
    for line in (f"python environment: {sys.prefix} ({sys.executable})", f"plugins loaded: {loaded or 'none'}"):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    sorts = (["tasks", "teachers", "students", "methods", "transforms", "datasets", "suites"] if args.what == "all"
             else [args.what])
    for sort in sorts:
        table = Table(title=sort)
        for column in ("name", "kind / modality", "plugin", "description"):
            table.add_column(column)
        if sort == "suites":
            for name in known_suites():
                table.add_row(name, "", "", str(resolve_suite(name)))
        else:
            for row in declared.rows[sort]:
                table.add_row(*row)
        console.print(table)
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    plugins = _Plugins(args)
    _, suite = plugins.suite(args.suite)  # before torch, the plugins and the modules below are imported
    registry = plugins.load()
    from kdbench.console import WIDTH, summary_table
    from kdbench.leaderboard.store import read

    board, _ = read(suite, args.tracking_uri, registry.kinds.entries, registry.manager.hook, tuned=args.tuned)
    Console(width=max(Console().width, WIDTH)).print(summary_table(board))
    return 0


def _publish(args: argparse.Namespace) -> int:
    plugins = _Plugins(args)
    suites = [plugins.suite(name)[1] for name in args.suites]  # before torch and the plugins are imported
    registry = plugins.load()
    from kdbench.leaderboard.publish import Stamp, check_clean, publish_suite, task_modalities, write_index
    from kdbench.leaderboard.store import read

    boards = [(suite, *read(suite, args.tracking_uri, registry.kinds.entries, registry.manager.hook, args.tuned))
              for suite in suites]
    defaults = {suite.name: read(suite, args.tracking_uri, registry.kinds.entries, registry.manager.hook)[0]
                for suite in suites} if args.tuned else {}
    # before any suite is written
    check_clean([board for _, board, _ in boards] + list(defaults.values()), args.allow_dirty)
    stamp = Stamp.now(args.argv)
    known = {name: task.modality for name, task in registry.tasks.entries.items()}
    for suite, board, tracker in boards:
        folder = args.out / suite.name
        written = publish_suite(board, folder, stamp, tracker.history, suite.description, tracker.pictures,
                                tracker.samples, registry.manager.hook, allow_dirty=args.allow_dirty,
                                modalities={**known, **task_modalities(tracker.runs())},
                                defaults=defaults.get(suite.name))
        print(f"{suite.name}: {len(written)} files in {folder}")
    listed, skipped = write_index(args.out, stamp, known)
    for path in skipped:
        print(f"kdbench: warning: {path} is not a kdbench leaderboard; not indexed",
              file=sys.stderr)
    print(f"{args.out / 'index.html'} and README.md list {len(listed)} suite(s)")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    registry = _registry(args)
    spec = registry.datasets.get(args.name)
    fetched = spec.fetch()
    print(f"{args.name}: {len(fetched)} file(s) downloaded, {len(spec.files) - len(fetched)} already present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
