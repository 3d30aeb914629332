"""Where a hyper-parameter may be searched: a range or a set of choices around the paper's value.

A method declares its own (``Method.search_space``), so every method — the baseline
included — is tuned over what its authors would vary, with the same budget; a suite's
``tune:`` block may narrow or replace a method's space and names the recipe fields searched
for every method alike. In a suite a distribution is written ``{low: 1, high: 20}``
(``log: true`` for a log scale, ``int: true`` for integers) or ``{choices: [a, b]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class Sampler(Protocol):
    """What draws a value: an Optuna trial, or anything with its three ``suggest_*`` methods."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_categorical(self, name: str, choices: tuple[Any, ...]) -> Any: ...


@dataclass(frozen=True)
class Range:
    """Real (or, with ``integer``, whole) values from ``low`` to ``high``, on a log scale with ``log``."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range must start above 0, got low = {self.low}")

    def draw(self, sampler: Sampler, name: str) -> Any:
        if self.integer:
            return sampler.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return sampler.suggest_float(name, self.low, self.high, log=self.log)

    def ends(self) -> list[Any]:
        """The range's two ends, as values a method's ``validate_params`` must accept."""
        return [int(self.low), int(self.high)] if self.integer else [self.low, self.high]

    def describe(self) -> str:
        kind = "int " if self.integer else ""
        return f"{kind}[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """One of ``options``."""

    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("choices must not be empty")

    def draw(self, sampler: Sampler, name: str) -> Any:
        return sampler.suggest_categorical(name, self.options)

    def ends(self) -> list[Any]:
        return list(self.options)

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.options)) + "}"


Distribution = Range | Choice
SearchSpace = Mapping[str, Distribution]


def parse(value: Any) -> Distribution:
    """A distribution from its suite form; ``ValueError`` saying what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"expected {{low: .., high: ..}} or {{choices: [..]}}, got {value!r}")
    if "choices" in value:
        if set(value) != {"choices"} or not isinstance(value["choices"], list):
            raise ValueError("a choice is written {choices: [a, b, ...]} and nothing else")
        return Choice(tuple(value["choices"]))
    unknown = set(value) - {"low", "high", "log", "int"}
    if unknown or not {"low", "high"} <= set(value):
        raise ValueError(f"a range is written {{low: .., high: .., log: false, int: false}}, got {value!r}")
    low, high = value["low"], value["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ValueError(f"low and high must be numbers, got {low!r} and {high!r}")
    return Range(float(low), float(high), log=bool(value.get("log", False)), integer=bool(value.get("int", False)))


def draw(space: SearchSpace, sampler: Sampler, prefix: str = "") -> dict[str, Any]:
    """One value per parameter of ``space``, drawn by ``sampler`` under the name ``prefix + name``."""
    return {name: distribution.draw(sampler, prefix + name) for name, distribution in sorted(space.items())}


def method_space(defaults: Mapping[str, Any], declared: SearchSpace,
                 overrides: Mapping[str, Any]) -> dict[str, Distribution]:
    """A method's space for one suite: its declared one, with the suite's ``tune.params`` entries
    (suite form) replacing or adding to it; ``ValueError`` naming a parameter it does not have."""
    space = dict(declared)
    for name, value in overrides.items():
        if name not in defaults:
            raise KeyError(name)
        space[name] = parse(value)
    return space
