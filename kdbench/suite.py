"""Suite files: what to run, validated completely before anything trains.

A suite names tasks, teacher/student pairs, methods (with optional hyper-parameter
grids), seeds and recipe overrides — at the top level, or per ``cases`` entry when
one suite spans modalities whose models differ. Every error names the file, the
field, what was expected and, for names, the known choices with a "did you mean".
"""

from __future__ import annotations

import itertools
import math
import re
import reprlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdbench.errors import SuiteError
from kdbench.hashing import canonical_json
from kdbench.leaderboard.metrics import MODEL_STATS
from kdbench.recipe import Recipe
from kdbench.registry import Registry, unknown_name_message
from kdbench.transform import NO_TRANSFORM, parse


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskEntry(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class PairEntry(_Strict):
    teacher: str | list[str] | None = None
    """One teacher, or a list of them for multi-teacher methods."""
    student: str

    @property
    def teachers(self) -> list[str]:
        if self.teacher is None:
            return []
        return [self.teacher] if isinstance(self.teacher, str) else list(self.teacher)


class MethodEntry(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Each key takes every listed value; the grid is the cartesian product."""

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    def points(self) -> list[dict[str, Any]]:
        """The resolved parameter sets: ``params`` with each grid point applied."""
        keys = sorted(self.grid)
        return [
            {**self.params, **dict(zip(keys, values, strict=True))}
            for values in itertools.product(*(self.grid[k] for k in keys))
        ]


BETTER_THAN = "better-than "


class PaperAnchor(_Strict):
    """A number a paper reports for one row, shown beside the reproduced one, and optionally the
    claim it makes, which the leaderboard judges 'reproduced' or 'not reproduced'.

    The claim is every tolerance given, all of which must hold: ``within`` (the row's mean at most
    that far from ``value``, or from the measured mean of row ``of``), ``direction`` (better than
    another row of the same table, Welch's p < 0.05 on the seeds) and ``gap_closed`` (at least
    that share of the teacher–baseline gap closed). Without one the anchor is only shown.
    """

    task: str
    method: str
    """The row's method (its variant name, as the table shows it), or 'teacher'."""
    value: float | None = None
    """The paper's number for the row (shown in the 'paper' column)."""
    teacher: str | None = None
    student: str | None = None
    source: str = ""
    within: float | None = Field(default=None, ge=0)
    """|measured mean − target| ≤ within, in the metric's units; the target is ``value``, or ``of``'s."""
    of: str | None = None
    """Measure ``within`` against this row's measured mean ('teacher', or a method of the table)
    instead of ``value``: a claim relative to the paper's own reference ("GLNN within 1.5 points
    of its teacher") holds on our teacher, whatever its absolute accuracy."""
    direction: str | None = None
    """'better-than METHOD': the row's mean beats that row's in the metric's direction, and Welch's
    two-sided test on the seeds gives p < 0.05 (one planned test, not Holm-corrected)."""
    gap_closed: float | None = None
    """At least this share of the teacher–baseline gap closed (the table's 'gap closed')."""

    @field_validator("direction")
    @classmethod
    def _direction(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(rf"{BETTER_THAN}\S+", value):
            raise ValueError(f"expected '{BETTER_THAN}METHOD' (the row this one beats), got {shown_value(value)}")
        return value

    @model_validator(mode="after")
    def _claim_is_complete(self) -> PaperAnchor:
        if self.of is not None and self.within is None:
            raise ValueError("'of' names the row 'within' is measured against; give 'within' too")
        if self.within is not None and self.of is None and self.value is None:
            raise ValueError("'within' needs the paper's 'value', or 'of' naming the row to be near")
        if self.value is None and not self.claimed:
            raise ValueError("an anchor needs the paper's 'value' or a claim ('within', 'direction', 'gap_closed')")
        return self

    @property
    def claimed(self) -> bool:
        """Whether the anchor states a claim to judge, not only a number to show."""
        return self.within is not None or self.direction is not None or self.gap_closed is not None

    @property
    def better_than(self) -> str | None:
        """The method ``direction`` says this row beats."""
        return self.direction[len(BETTER_THAN):] if self.direction else None


MAX_SEEDS = 1000


def _distinct(seeds: list[int]) -> list[int]:
    """A seed listed twice would be one run, silently: say so instead."""
    repeated = next((seed for s, seed in enumerate(seeds) if seed in seeds[:s]), None)
    if repeated is not None:
        raise ValueError(f"seed {repeated} is listed twice")
    return seeds


Seeds = Annotated[list[Annotated[int, Field(ge=0, lt=2**31)]], Field(min_length=1, max_length=MAX_SEEDS),
                  AfterValidator(_distinct)]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Transforms = Annotated[list[Annotated[str, Field(max_length=64)]], Field(min_length=1, max_length=32)]
"""Suite names become experiment and folder names: no separators, markup or dots in front."""


def _seeds(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value <= MAX_SEEDS:
            raise ValueError(f"seeds must be a count in 1..{MAX_SEEDS} or a list of non-negative integers")
        return list(range(value))
    if value is not None and not isinstance(value, list):  # pydantic's own words would name only the list form
        raise ValueError("expected a count of seeds (an integer) or a list of integer seeds")
    return value


class InitEntry(_Strict):
    """Where a case's students start: the final weights of another case's run of ``method`` with the
    same task, student and seed, instead of a fresh initialisation. On-policy distillation (GKD,
    MiniLLM) starts from a student already fine-tuned on the data, so a suite comparing it with
    offline KD starts every method there, the baseline continuing its own training included."""

    case: str
    method: str


class Case(_Strict):
    name: str = Field(default="", pattern=r"^([A-Za-z0-9][A-Za-z0-9 _.-]{0,63})?$")
    tasks: list[TaskEntry] = Field(min_length=1)
    pairs: list[PairEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    seeds: Seeds | None = None
    recipe: dict[Literal["teacher", "student"], dict[str, Any]] = Field(default_factory=dict)
    transforms: Transforms | None = None
    init: InitEntry | None = None

    _seeds = field_validator("seeds", mode="before")(_seeds)


class TuneBlock(_Strict):
    """How ``kdbench tune`` searches: the same budget for every (task, pair, method) of the suite."""

    trials: int = Field(default=12, ge=1, le=1000)
    """Trials per method (``--trials`` overrides); the paper defaults are always the first."""
    recipe: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Student recipe fields searched for every method alike (``lr: {low: 0.001, high: 0.1, log: true}``)."""
    params: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    """Per method, distributions that replace (or add to) its own ``search_space`` entries."""
    epochs: int | None = Field(default=None, ge=1, le=10_000)
    """Student epochs per trial (default: the run's own)."""
    seed: int = Field(default=0, ge=0)
    """Seeds the sampler; trials train with each case's first seed."""


class Suite(_Strict):
    name: str = Field(pattern=NAME)
    description: str = ""
    seeds: Seeds = Field(default_factory=lambda: [0])
    checkpoint: Literal["final", "best-val"] = "final"
    metric: str | None = None
    """The metric the leaderboard reports (default: each task's primary metric)."""
    recipe: dict[Literal["teacher", "student"], dict[str, Any]] = Field(default_factory=dict)
    tasks: list[TaskEntry] = Field(default_factory=list)
    pairs: list[PairEntry] = Field(default_factory=list)
    methods: list[MethodEntry] = Field(default_factory=list)
    cases: list[Case] = Field(default_factory=list)
    paper: list[PaperAnchor] = Field(default_factory=list)
    tune: TuneBlock = Field(default_factory=TuneBlock)
    transforms: Transforms = Field(default_factory=lambda: [NO_TRANSFORM])
    """Every student row runs under each (``fp32``: as trained; ``int8-dynamic``, ``pruned-0.5``, ...)."""

    _seeds = field_validator("seeds", mode="before")(_seeds)

    @model_validator(mode="after")
    def _has_work(self) -> Suite:
        if not self.cases and not (self.tasks and self.pairs and self.methods):
            raise ValueError("a suite needs 'tasks', 'pairs' and 'methods', or a list of 'cases'")
        return self

    @model_validator(mode="after")
    def _inits_name_earlier_cases(self) -> Suite:
        """A case starts from a case above it that starts from scratch and runs the method, so the
        weights it needs are trained first and once."""
        seen: dict[str, Case] = {}
        for case in self.cases:
            if case.init is not None:
                source = seen.get(case.init.case)
                if source is None:
                    raise ValueError(f"case '{case.name}': init.case '{case.init.case}' is not a case above it")
                if source.init is not None:
                    raise ValueError(f"case '{case.name}': init.case '{source.name}' starts from another case itself")
                if case.init.method not in {entry.name for entry in source.methods}:
                    raise ValueError(f"case '{case.name}': case '{source.name}' does not run method "
                                     f"'{case.init.method}'")
            if case.name:
                seen[case.name] = case
        return self

    def all_cases(self) -> list[Case]:
        """Cases with the suite's top-level values filled in where a case leaves them out."""
        if not self.cases:
            return [Case(tasks=self.tasks, pairs=self.pairs, methods=self.methods, seeds=self.seeds,
                         transforms=self.transforms)]
        return [
            case.model_copy(update={"seeds": case.seeds if case.seeds is not None else self.seeds,
                                    "transforms": case.transforms if case.transforms is not None else self.transforms})
            for case in self.cases
        ]

    def recipe_overrides(self, case: Case, role: str) -> dict[str, Any]:
        return {**self.recipe.get(role, {}), **case.recipe.get(role, {})}


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys instead of keeping the last one."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_suite(path: str | Path, registry: Registry | Callable[[], Registry],
               declared: Mapping[str, Collection[str]] | None = None) -> Suite:
    """Read, parse and validate a suite file against what the plugins offer.

    In two stages: first everything that needs no plugin (size, YAML, fields, types, text lengths,
    the run count), then the names and parameters against ``registry`` — a loaded one, or a
    function loading it, called only once the first stage passed, so a misspelt field is reported
    without importing torch. ``declared`` (the names per sort of a fresh declarations snapshot)
    lets a name no plugin declares be reported before the registry is loaded, too.
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SuiteError(f"{path}: {size:,} bytes; a suite file may hold at most {MAX_FILE_BYTES:,}")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}{_yaml_problem(error)}") from None
    except UnicodeDecodeError:
        raise SuiteError(f"{path}: not a text file") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping of suite fields, got {type(data).__name__}")
    if _too_many_values(data):
        raise SuiteError(f"{path}: more than {MAX_VALUES:,} values once YAML aliases are expanded")
    long = _long_text(data)
    if long is not None:
        field, length = long
        raise SuiteError(f"{path}: {field or 'suite'}: {length:,} characters; a suite's text may be at most "
                         f"{MAX_TEXT:,} per value")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = _field_path(first["loc"])
        if first["type"] == "extra_forbidden":
            known = _fields_at(first["loc"][:-1])
            raise SuiteError(f"{path}: {field}: " + unknown_name_message("field", first["loc"][-1], known)) from None
        got = first.get("input")
        shown = "" if isinstance(got, dict) or first["type"] == "missing" else f" (got {shown_value(got)})"
        message = first["msg"].removeprefix("Value error, ")
        raise SuiteError(f"{path}: {field or 'suite'}: {message}{shown}") from None
    runs = run_count(suite)
    if runs > MAX_RUNS:
        raise SuiteError(f"{path}: the suite expands to {runs:,} runs, more than the {MAX_RUNS:,} one suite may "
                         "hold (tasks × seeds × pairs × transforms × each method's grid points)")
    if declared is not None:
        check_declared(suite, declared, str(path))
    check_names(suite, registry() if callable(registry) else registry, str(path))
    return suite


MAX_FILE_BYTES = 256 * 1024
"""A suite is a page of YAML (the largest shipped one is 28 KB); anything far bigger is a mistake."""

MAX_TEXT = 1_000
"""Characters in any one string of a suite: a description is copied into every published page, and a
name into every error message that names it."""

MAX_RUNS = 10_000
"""Runs one suite may expand to: counted before expanding, so a grid of a billion points is refused
in a moment instead of filling the memory. Fifteen times the largest shipped suite (cifar100-crd, 642);
expanding 10,000 takes about a second and 60 MB (100,000 took 10 s and 600 MB here)."""


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what the YAML parser found wrong. An unclosed bracket or quote is reported where it
    opened (the parser's context mark), since the line where parsing failed is the one after it."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark, context = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
    opened = getattr(error, "context", None) or ""
    if context is not None and mark is not None and ("flow" in opened or "quoted" in opened):
        return (f":{context.line + 1}:{context.column + 1}: invalid YAML: {opened.removeprefix('while ')} "
                f"that starts here is not closed ({problem} at line {mark.line + 1}, column {mark.column + 1})")
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    return f"{where}: invalid YAML: {problem}"


def _long_text(data: Any) -> tuple[str, int] | None:
    """The field path and length of the first string (value or key) longer than ``MAX_TEXT``."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        loc, item = stack.pop()
        if isinstance(item, str) and len(item) > MAX_TEXT:
            return _field_path(loc), len(item)
        if isinstance(item, dict):
            stack.extend((loc, key) for key in item)
            stack.extend(((*loc, str(key)), value) for key, value in item.items())
        elif isinstance(item, list):
            stack.extend(((*loc, i), value) for i, value in enumerate(item))
    return None


def run_count(suite: Suite) -> int:
    """How many runs the suite expands to at most (teachers shared between pairs counted each time),
    by arithmetic: no grid point is made."""
    total = 0
    for case in suite.all_cases():
        assert case.seeds is not None and case.transforms is not None
        students = len(case.transforms) * sum(math.prod(len(values) for values in entry.grid.values())
                                               for entry in case.methods)
        total += len(case.tasks) * len(case.seeds) * sum(len(pair.teachers) + students for pair in case.pairs)
    return total


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The fields a suite may hold at ``loc`` (a path of names and list indexes), for a "did you mean"."""
    model: Any = Suite
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        model = next((a for a in inner if issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return sorted(model.model_fields)


MAX_VALUES = 100_000
"""A suite is a page of YAML; a billion-laughs alias chain must not reach hashing or repr."""


def _too_many_values(data: Any) -> bool:
    """Whether ``data`` holds more than ``MAX_VALUES`` values, counting shared (aliased) ones each time."""
    count, stack = 0, [data]
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def shown_value(value: Any) -> str:
    """A value for an error message: short, whatever its size."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 6, 6, 80, 80
    return short.repr(value)


def _field_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def check_declared(suite: Suite, declared: Mapping[str, Collection[str]], where: str) -> None:
    """Every task, teacher, student and method name the suite uses is among ``declared`` (names per sort):
    the checks that need the plugins' names only, made first whether the names come from the loaded
    registry or from a snapshot of its declarations (``kdbench.declarations``)."""

    def check(field: str, sort: str, name: str) -> None:
        if name not in declared[f"{sort}s"]:
            raise SuiteError(f"{where}: {field}: {unknown_name_message(sort, name, declared[f'{sort}s'])}")

    for c, case in enumerate(suite.cases or [None]):
        prefix = f"cases[{c}]." if case is not None else ""
        case = case or suite.all_cases()[0]
        for t, task in enumerate(case.tasks):
            check(f"{prefix}tasks[{t}].name", "task", task.name)
        for p, pair in enumerate(case.pairs):
            for name in pair.teachers:
                check(f"{prefix}pairs[{p}].teacher", "teacher", name)
            check(f"{prefix}pairs[{p}].student", "student", pair.student)
        for m, entry in enumerate(case.methods):
            check(f"{prefix}methods[{m}].name", "method", entry.name)
    for name in suite.tune.params:
        check(f"tune.params.{name}", "method", name)


def check_names(suite: Suite, registry: Registry, where: str) -> None:
    """Every task, model and method name is known, and every option and parameter exists."""
    from kdbench.declarations import names_of
    from kdbench.task import ROLES  # with torch: only once the plugins are loaded

    def fail(field: str, message: str) -> None:
        raise SuiteError(f"{where}: {field}: {message}")

    check_declared(suite, names_of(registry), where)
    for role in ROLES:
        _check_recipe(suite.recipe.get(role, {}), f"recipe.{role}", fail)
    for c, case in enumerate(suite.cases or [None]):
        prefix = f"cases[{c}]." if case is not None else ""
        case = case or suite.all_cases()[0]
        for role in ROLES:
            _check_recipe(case.recipe.get(role, {}), f"{prefix}recipe.{role}", fail)
        _check_transforms(case.transforms if case.transforms is not None else suite.transforms, registry,
                          f"{where}: {prefix}transforms")
        for t, task in enumerate(case.tasks):
            field = f"{prefix}tasks[{t}]"
            known = registry.tasks.get(task.name).options
            for option in task.options:
                if option not in known:
                    fail(f"{field}.options", unknown_name_message(f"option of task {task.name}", option, known))
        for p, pair in enumerate(case.pairs):
            field = f"{prefix}pairs[{p}]"
            if isinstance(pair.teacher, list) and not pair.teacher:
                fail(f"{field}.teacher", "expected a teacher name or a non-empty list of them")
        runs: dict[tuple[str, str], str] = {}
        """Each method run of the case, by its name and resolved parameters, with the field listing it."""
        for m, entry in enumerate(case.methods):
            field = f"{prefix}methods[{m}]"
            method = registry.methods.get(entry.name)
            for key in [*entry.params, *entry.grid]:
                if key not in method.defaults:
                    sort = f"parameter of method {entry.name}"
                    fail(f"{field}.params", unknown_name_message(sort, key, method.defaults))
            for key, values in entry.grid.items():
                if not values:
                    fail(f"{field}.grid.{key}", "expected a non-empty list of values")
            for point in entry.points():
                for key, value in point.items():
                    problem = _param_problem(method.defaults[key], value)
                    if problem:
                        fail(f"{field}.params.{key}", problem)
                try:
                    method.validate_params({**method.defaults, **point})
                except ValueError as error:
                    fail(f"{field}.params", str(error))
                _check_listed_once(runs, entry.name, {**method.defaults, **point}, point, field, fail)
    _check_metric(suite, registry, fail)
    _check_tune(suite, registry, fail)
    _check_paper(suite, fail)


def _check_listed_once(runs: dict[tuple[str, str], str], name: str, resolved: dict[str, Any],
                       point: dict[str, Any], field: str, fail: Any) -> None:
    """A method run with the same parameters as an earlier one (listed twice, a default spelled out,
    a grid value repeated) has the same key, so the plan would keep one of them without a word."""
    run = (name, canonical_json(resolved))
    settings = ", ".join(f"{key}={shown_value(value)}" for key, value in sorted(point.items()))
    what = f"method '{name}'" + (f" with {settings}" if settings else "")
    if run in runs:
        fail(field, f"{what} appears twice in its grid" if runs[run] == field
             else f"{what} is listed twice: {runs[run]} runs the same parameters")
    runs[run] = field


def _check_metric(suite: Suite, registry: Registry, fail: Any) -> None:
    """The reported metric is one every task of the suite reports: its kind declares it, or it is a
    model stat. Any other would train the whole suite for a board of n/a rows."""
    if suite.metric is None or suite.metric in MODEL_STATS:
        return
    for case in suite.all_cases():
        for task in case.tasks:
            spec = registry.tasks.get(task.name)
            kind = registry.kinds.get(spec.kind)
            if kind.metric(suite.metric) is None:
                known = [*(metric.name for metric in kind.metrics), *MODEL_STATS]
                fail("metric", unknown_name_message(f"metric of task {task.name} (kind {spec.kind})",
                                                    suite.metric, known))


def _check_transforms(labels: list[str], registry: Registry, where: str) -> None:
    """Each transform is known, takes the number it is given, and is listed once (``pruned-0.50`` is
    ``pruned-0.5`` again: the same run key)."""
    seen: dict[str, str] = {}
    for t, label in enumerate(labels):
        transform = parse(label, registry.transforms.entries, f"{where}[{t}]")
        same = transform.label if transform is not None else label
        if same in seen:
            raise SuiteError(f"{where}[{t}]: transform '{label}' is listed twice (as '{seen[same]}' before)")
        seen[same] = label


def _check_paper(suite: Suite, fail: Any) -> None:
    """Every method an anchor names is one the suite runs, so a typo is not a claim never judged.

    Tasks are not checked here: an anchor whose task has no row is listed on the board as
    untested, under its task's name, so it cannot drop out unseen either."""
    methods = sorted({"teacher", *(entry.name for case in suite.all_cases() for entry in case.methods)})
    for a, anchor in enumerate(suite.paper):
        for key, name in (("method", anchor.method), ("of", anchor.of), ("direction", anchor.better_than)):
            if name is not None and name.split("[")[0] not in methods:
                fail(f"paper[{a}].{key}", unknown_name_message("method of this suite", name, methods))


UNSEARCHED = {"epochs", "augment", "train_examples", "precision", "channels_last", "compile", "deterministic"}
"""Recipe fields that define the protocol (its budget, its data, its numerics), so no study may move them."""


def _check_tune(suite: Suite, registry: Registry, fail: Any) -> None:
    """Every searched recipe field and parameter exists, and every end of every range is a value its
    owner accepts — the method's ``validate_params`` or the recipe's own bounds — before a trial runs."""
    from kdbench.search_space import method_space, parse

    for name, value in suite.tune.recipe.items():
        if name not in Recipe.model_fields or name in UNSEARCHED:
            fail(f"tune.recipe.{name}", unknown_name_message("searchable recipe field", name,
                                                             set(Recipe.model_fields) - UNSEARCHED))
        try:
            distribution = parse(value)
        except ValueError as error:
            fail(f"tune.recipe.{name}", str(error))
        for end in distribution.ends():
            _check_recipe({name: end}, f"tune.recipe.{name}", fail)
    given: dict[str, dict[str, Any]] = {}  # what the suite sets for each method, e.g. takd's assistant
    for case in suite.all_cases():
        for entry in case.methods:
            given.setdefault(entry.name, entry.params)
    for name in sorted(set(given) | set(suite.tune.params)):
        method = registry.methods.get(name)
        overrides = suite.tune.params.get(name, {})
        try:
            space = method_space(method.defaults, method.search_space, overrides)
        except KeyError as error:
            fail(f"tune.params.{name}", unknown_name_message(f"parameter of method {name}", error.args[0],
                                                             method.defaults))
        except ValueError as error:
            fail(f"tune.params.{name}", str(error))
        for key, distribution in sorted(space.items()):
            for end in distribution.ends():
                try:
                    method.validate_params({**method.defaults, **given.get(name, {}), key: end})
                except ValueError as error:
                    where = f"tune.params.{name}.{key}" if key in overrides else f"method {name} search_space.{key}"
                    fail(where, f"{key} = {end!r} is refused by method {name}: {error}")


def _check_recipe(overrides: dict[str, Any], field: str, fail: Any) -> None:
    for key in overrides:
        if key not in Recipe.model_fields:
            fail(field, unknown_name_message("recipe field", key, Recipe.model_fields))
    try:
        Recipe.model_validate({"epochs": 1, "batch_size": 1, "lr": 0.1, **overrides})
    except ValidationError as error:
        first = error.errors()[0]
        fail(f"{field}.{_field_path(first['loc'])}", f"{first['msg']} (got {shown_value(first.get('input'))})")


def _param_problem(default: Any, value: Any) -> str | None:
    """A type mismatch between a hyper-parameter's default and the suite's value."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, got {shown_value(value)}"
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {shown_value(value)}"
        if isinstance(default, int) and not isinstance(value, int):
            return f"expected an integer, got {shown_value(value)}"
        if not math.isfinite(value):
            return f"expected a finite number, got {shown_value(value)}"
    if isinstance(default, str) and not isinstance(value, str):
        return f"expected a string, got {shown_value(value)}"
    return None
