"""Every loaded method's ``search_space`` is consistent with its ``defaults`` and ``validate_params``, the
methods with tunable hyper-parameters declare one, and suites' distributions parse (``kdbench.search_space``)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from kdbench import Choice, Method, Range
from kdbench.registry import Registry
from kdbench.search_space import parse

TUNABLE = {
    # classification (methods plugin)
    "kd", "kd-reverse", "dkd", "dist", "ls-kd", "multi-teacher", "takd", "ban", "fitnets", "at", "nst", "vid",
    "pkt", "rkd", "sp", "cc", "crd",
    # recsys, graph, crossmodal, diffusion
    "score-kd", "rd", "cd", "rrd", "de", "glnn", "lsp", "bev-feature", "heatmap-kd", "bev-relation", "consistency",
}
"""Methods whose authors vary some loss weight, temperature or rate: each must give ``kdbench tune`` a space."""

UNTUNED = {"student-only", "dml", "progressive", "ddim-n"}
"""Methods whose parameters are all scheme sizes or budgets (or that have none): their space stays empty."""

NOT_KNOBS = {"student_feature", "teacher_feature", "assistant", "iterations", "stage_iterations", "peers",
             "generations", "experts", "samples", "negatives", "dim", "K", "L", "N", "weights"}
"""Parameters that name features or models, or size the budget, the scheme or a sample: never searched."""


def filled(method: type[Method]) -> dict[str, Any]:
    """The defaults, with a model name for each parameter a suite must set (a ``None`` default, e.g. takd's
    ``assistant``), so that ``validate_params`` judges the searched value alone."""
    return {key: "some-model" if value is None else value for key, value in method.defaults.items()}


def problems(method: type[Method]) -> list[str]:
    """What is wrong with ``method``'s search space; empty when nothing is."""
    found = []
    base = filled(method)
    try:
        method.validate_params(dict(base))
    except ValueError as error:
        return [f"{method.name}: its own defaults are refused ({error})"]
    for name, distribution in method.search_space.items():
        where = f"{method.name}.{name}"
        if not isinstance(distribution, (Range, Choice)):
            found.append(f"{where}: {distribution!r} is neither a Range nor a Choice")
            continue
        if name not in method.defaults:
            found.append(f"{where}: not a key of defaults {sorted(method.defaults)}")
            continue
        default = method.defaults[name]
        if isinstance(distribution, Range):
            inside = isinstance(default, (int, float)) and distribution.low <= default <= distribution.high
            if distribution.integer and not isinstance(default, int):
                inside = False
        else:
            inside = default in distribution.options
        if not inside:
            found.append(f"{where}: default {default!r} lies outside {distribution.describe()}")
        for end in distribution.ends():
            try:
                method.validate_params({**base, name: end})
            except ValueError as error:
                found.append(f"{where}: end {end!r} of {distribution.describe()} is refused ({error})")
    return found


@pytest.fixture
def registry() -> Registry:
    return Registry.load()


def test_every_search_space_fits_its_methods_defaults_and_validator(registry):
    assert len(registry.methods.names()) >= len(TUNABLE | UNTUNED)
    found = [problem for name in registry.methods.names() for problem in problems(registry.methods.get(name))]
    assert not found, "\n".join(found)


def test_methods_with_tunable_parameters_declare_a_space_and_the_others_none(registry):
    assert (TUNABLE | UNTUNED) <= set(registry.methods.names())
    empty = sorted(name for name in TUNABLE if not registry.methods.get(name).search_space)
    assert not empty, f"no search_space: {empty}"
    declared = sorted(name for name in UNTUNED if registry.methods.get(name).search_space)
    assert not declared, f"a search_space where nothing is tunable: {declared}"


def test_no_space_searches_a_feature_name_a_budget_or_a_count(registry):
    searched = {(name, key) for name in registry.methods.names() for key in registry.methods.get(name).search_space}
    assert not {(name, key) for name, key in searched if key in NOT_KNOBS}


class _Blend(Method):
    name = "blend-for-test"
    kinds = None
    defaults: ClassVar[dict[str, Any]] = {"alpha": 0.5, "T": 4.0, "distance": "l2"}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not 0 <= params["alpha"] < 1:
            raise ValueError("alpha must lie in [0, 1)")
        if params["T"] <= 0:
            raise ValueError("T must be positive")


def test_the_check_finds_a_refused_end_a_default_outside_and_an_unknown_key(monkeypatch):
    monkeypatch.setattr(_Blend, "search_space", {"alpha": Range(0.0, 0.99), "T": Range(1.0, 20.0, log=True),
                                                 "distance": Choice(("l2", "l1"))})
    assert problems(_Blend) == []
    monkeypatch.setattr(_Blend, "search_space", {"alpha": Range(0.0, 1.0), "T": Range(5.0, 20.0),
                                                 "distance": Choice(("l1",)), "beta": Range(1.0, 2.0)})
    found = "\n".join(problems(_Blend))
    assert "alpha: end 1.0" in found
    assert "T: default 4.0 lies outside" in found
    assert "distance: default 'l2' lies outside" in found
    assert "beta: not a key of defaults" in found


def test_parse_reads_ranges_log_ranges_int_ranges_and_choices():
    assert parse({"low": 1, "high": 20}) == Range(1.0, 20.0)
    assert parse({"low": 0.001, "high": 0.1, "log": True}) == Range(0.001, 0.1, log=True)
    whole = parse({"low": 1, "high": 8, "int": True})
    assert whole == Range(1.0, 8.0, integer=True) and whole.ends() == [1, 8]
    assert all(isinstance(end, int) for end in whole.ends())
    assert parse({"choices": ["l2", "pseudo-huber"]}) == Choice(("l2", "pseudo-huber"))
    assert parse({"low": 0.0, "high": 1.0}).ends() == [0.0, 1.0]


@pytest.mark.parametrize("value, message", [
    ({"low": 2, "high": 2}, "low must be below high"),
    ({"low": 5, "high": 1}, "low must be below high"),
    ({"low": 0, "high": 1, "log": True}, "log range must start above 0"),
    ({"low": "a", "high": 1}, "must be numbers"),
    ({"low": True, "high": 2}, "must be numbers"),
    ({"low": 1, "high": 2, "step": 0.5}, "a range is written"),
    ({"low": 1}, "a range is written"),
    ({"choices": ["a"], "low": 1}, "a choice is written"),
    ({"choices": []}, "must not be empty"),
    ([1, 2], "expected"),
])
def test_parse_refuses_what_is_not_a_distribution(value, message):
    with pytest.raises(ValueError, match=message):
        parse(value)
