"""Leave-last-out: each user's latest interaction is the test item, the one before it validates.

Implicit feedback has no labels to stratify on; what a recommender is asked is "what will
this user pick next", so the split is chronological per user. Many MovieLens users rate
several films within the same second, so ties in the timestamp are broken by the order the
interactions are given in — for MovieLens-100K the row order of the checksummed ``u.data``,
which GroupLens shuffled: among interactions with equal timestamps the one on the later row
counts as the later one. The split is then the same on every machine and carries no bias
from the ids (breaking ties by item id would hold out the highest ids, which MovieLens
gave to the films added last, and so the less popular ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

HELD_OUT = 2
"""Interactions a user needs beyond one training item to be held out (validation + test)."""


@dataclass(frozen=True)
class Interactions:
    """One split's (user, item) pairs, 0-based ids; for 'val' and 'test' one pair per evaluated user."""

    users: torch.Tensor
    items: torch.Tensor

    def __len__(self) -> int:
        return len(self.users)


def leave_last_out(users: torch.Tensor, items: torch.Tensor,
                   timestamps: torch.Tensor) -> dict[str, Interactions]:
    """'train', 'val' and 'test' interactions, split per user by time.

    A user with at least three interactions gives the last to 'test' and the second-last to
    'val'; a user with fewer keeps all of them in 'train' and is not evaluated (no user of
    MovieLens-100K with every rating counted, which has at least 20 per user).
    """
    order = _chronological(users, timestamps)
    users, items = users[order], items[order]
    counts = torch.bincount(users)
    ends = counts.cumsum(0)  # one past each user's last (sorted) interaction
    evaluated = (counts > HELD_OUT).nonzero().flatten()
    test = ends[evaluated] - 1
    val = test - 1
    train = torch.ones(len(users), dtype=torch.bool)
    train[test] = False
    train[val] = False
    return {
        "train": Interactions(users[train], items[train]),
        "val": Interactions(users[val], items[val]),
        "test": Interactions(users[test], items[test]),
    }


def _chronological(users: torch.Tensor, timestamps: torch.Tensor) -> torch.Tensor:
    """The permutation that sorts by user, then timestamp, keeping the given order among ties."""
    order = torch.argsort(timestamps, stable=True)
    return order[torch.argsort(users[order], stable=True)]
