"""Every built-in method is registered, declares a consistent contract, cites its paper, and
appears in the methods-mnist suite, which validates."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from kdbench.method import SCHEMES
from kdbench.registry import Registry
from kdbench.suite import load_suite
from kdbench.teacher import NEEDS
from tests.methods_fixtures import one_thread  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
BUILT_IN = {"student-only", "kd", "kd-reverse", "dkd", "dist", "ls-kd", "multi-teacher", "fitnets",
            "at", "nst", "vid", "pkt", "rkd", "sp", "cc", "crd", "dml", "ban", "takd"}
VARIANTS = {"crd-infonce"}
"""Built-in variants of a method above: registered and held to the same contract, not in methods-mnist."""
OWN_SUITES = {"specialists"}
"""Built-in methods held to the same contract but published by a suite of their own (specialists-fashion)."""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def built_in(registry: Registry) -> list:
    return [registry.methods.get(name) for name in sorted(BUILT_IN | VARIANTS | OWN_SUITES)]


def test_every_method_is_registered_by_the_methods_plugin(registry):
    assert BUILT_IN | VARIANTS | OWN_SUITES <= set(registry.methods.names())
    assert {registry.methods.plugins[name] for name in BUILT_IN | VARIANTS | OWN_SUITES} == {"methods"}


def test_each_method_declares_a_consistent_contract(registry):
    for method in built_in(registry):
        assert method.kinds is None or set(method.kinds) <= set(registry.kinds.names()), method.name
        assert method.scheme in SCHEMES and method.needs in NEEDS, method.name
        if method.scheme in ("online", "self"):
            assert method.needs == "none", f"{method.name} trains without a pre-trained teacher"
        if "student_feature" in method.defaults or method.name in ("at", "vid"):
            assert method.needs == "features", method.name
        if None in method.defaults.values():  # a parameter the suite must set: the defaults alone are refused
            with pytest.raises(ValueError, match="needs params"):
                method.validate_params(dict(method.defaults))
        else:
            method.validate_params(dict(method.defaults))


def test_each_method_cites_its_paper_with_a_year(registry):
    for method in built_in(registry):
        if method.name == "student-only":
            continue
        text = (sys.modules[method.__module__].__doc__ or "") + (method.__doc__ or "")
        assert re.search(r"\b(19|20)\d\d\b", text), f"{method.name}: no year in its citation"


def test_methods_mnist_suite_validates_and_runs_every_built_in_method(registry):
    suite = load_suite(REPO / "suites" / "methods-mnist.yaml", registry)
    named = {entry.name for case in suite.all_cases() for entry in case.methods}
    assert named == BUILT_IN
    assert suite.seeds == [0, 1, 2]
