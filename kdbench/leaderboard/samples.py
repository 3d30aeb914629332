"""Text samples on the published page: the start of each row's ``samples/`` artifacts, from one seed.

Some outputs are judged by reading them (a language model's generated text, predictions put
in words): the page shows each row's samples from its lowest seed that has any — the rule
pictures follow — so a reader compares methods' text without opening MLflow. A page holds
every row, so each row shows a capped amount, and the page says where it was cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdbench.leaderboard.board import Board
from kdbench.leaderboard.pictures import lowest_seed_with_any, row_model

PER_ROW = 2
"""Samples shown per row, the first by name."""
CHARS = 1500
"""Characters shown of each sample: a few paragraphs, enough to judge the text's quality."""

SampleFetch = Callable[[str], dict[str, str]]
"""A run id → its samples by file name (``Tracker.samples``)."""


@dataclass(frozen=True)
class Sample:
    """One sample as the page shows it."""

    name: str
    text: str
    """What the page shows: the sample's first ``CHARS`` characters."""
    length: int
    """The whole sample's length, in characters."""

    def note(self) -> str:
        """Where the page cut the sample; empty when it shows all of it."""
        return f"first {len(self.text):,} of {self.length:,} characters shown" if len(self.text) < self.length else ""


@dataclass(frozen=True)
class RowSamples:
    """One row's samples as the page shows them, under ``heading``."""

    heading: str
    samples: tuple[Sample, ...]
    total: int
    """How many samples the run has."""

    def note(self) -> str:
        """Which samples the page left out; empty when it shows all of them."""
        if self.total <= len(self.samples):
            return ""
        return f"{len(self.samples)} of {self.total} samples shown, the first by name"


def publish_samples(board: Board, fetch: SampleFetch) -> list[RowSamples]:
    """Each row's samples (its lowest seed with any), cut to ``PER_ROW`` samples of ``CHARS`` characters."""
    return [RowSamples(f"{row['task']} · {row_model(row)} · {row['method']} (seed {seed})",
                       tuple(Sample(name, samples[name][:CHARS], len(samples[name]))
                             for name in sorted(samples)[:PER_ROW]),
                       len(samples))
            for row, seed, samples in lowest_seed_with_any(board, fetch)]
