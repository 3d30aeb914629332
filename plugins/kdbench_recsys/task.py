"""Top-N recommendation from implicit feedback, as a kdbench ``ranking`` task.

Training batches are BPR triples: a row per training interaction, ``items`` holding the
positive item and one negative drawn uniformly from the items the user has not interacted
with in training, redrawn every epoch. A model is called as ``model(users, items)`` and
returns ``ModelOutput(scores, {"user": ..., "item": ...})``: ``items`` of shape [B, n]
scores each row's own items ([B, n] scores), a 1-D ``items`` of length n scores the same
items for every user ([B, n] too) — the full ranking, without copying the item table per user.

Evaluation ranks, for each evaluated user, the held-out item against every item the user
never interacted with, in any split. So the validation ranking leaves out the user's test
item and the test ranking leaves out the validation item: each is a known positive of the
user, and counting it as a negative would punish a model for ranking it high. Training
items are left out of both. The sampled metrics rank the held-out item against N items
drawn uniformly from the same never-interacted pool, once per task with a fixed generator,
so every model and seed faces the same negatives.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from kdbench import Batch, Recipe, Task, UserError, call_model
from kdbench_recsys.metrics import ranking_metrics, target_rank, top_overlap
from kdbench_recsys.split import Interactions

CUTOFF = 10
EVAL_USERS = 1024
SAMPLING_SEED = 0
"""Seeds the sampled-metric negatives and the negatives of the unshuffled training order."""


class RankingTask(Task):
    kind = "ranking"
    primary_metric = f"ndcg_{CUTOFF}"
    higher_is_better = True

    def __init__(self, splits: dict[str, Interactions], num_users: int, num_items: int,
                 recipes: dict[str, Recipe], sampled: tuple[int, ...] = (99, 499)) -> None:
        """``sampled``: sizes N of the sampled-metric candidate sets (1 held-out item vs N negatives)."""
        super().__init__()
        self.splits = splits
        self.recipes = recipes
        self.info = {"num_users": num_users, "num_items": num_items}
        self.seen_in_train = _matrix(splits["train"], num_users, num_items)
        """[users, items] bool: the interactions a model may learn from."""
        self.seen = self.seen_in_train.clone()
        for split in ("val", "test"):
            self.seen[splits[split].users, splits[split].items] = True
        unseen = (~self.seen).sum(1).min().item()
        if sampled and max(sampled) > unseen:
            raise UserError(f"ranking task: sampled metrics need {max(sampled)} negatives per user, but one user "
                            f"has only {unseen} items never interacted with")
        generator = torch.Generator().manual_seed(SAMPLING_SEED)
        self.sampled_negatives = {
            split: {size: self._never_seen(splits[split].users, size, generator) for size in sampled}
            for split in ("val", "test")
        }

    @property
    def num_users(self) -> int:
        return self.info["num_users"]

    @property
    def num_items(self) -> int:
        return self.info["num_items"]

    @property
    def num_train(self) -> int:
        return len(self.splits["train"])

    def recipe(self, role: str) -> Recipe:
        return self.recipes[role]

    def has_split(self, split: str) -> bool:
        return len(self.splits[split]) > 0

    def deterministic(self, recipe: Recipe) -> bool:
        """Never: the negatives are redrawn every epoch, so no output can be cached by index."""
        return False

    def batches(self, split: str, recipe: Recipe | None, generator: torch.Generator | None) -> Iterator[Batch]:
        """Training: BPR triples, shuffled and with fresh negatives under ``generator``. Other
        splits: each evaluated user with its held-out item (``items`` [B, 1])."""
        pairs = self.splits[split]
        if split != "train":
            for start in range(0, len(pairs), EVAL_USERS):
                yield {"user": pairs.users[start:start + EVAL_USERS],
                       "items": pairs.items[start:start + EVAL_USERS, None]}
            return
        training = recipe is not None and generator is not None
        draw = generator if training else torch.Generator().manual_seed(SAMPLING_SEED)
        order = torch.randperm(len(pairs), generator=draw) if training else torch.arange(len(pairs))
        negatives = self.sample_unseen(pairs.users[order], 1, draw, self.seen_in_train)[:, 0]
        size = recipe.batch_size if training else EVAL_USERS
        for start in range(0, len(pairs), size):
            index = order[start:start + size]
            items = torch.stack([pairs.items[index], negatives[start:start + size]], 1)
            yield {"user": pairs.users[index], "items": items, "index": index}

    def model_input(self, batch: Batch, role: str) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["user"], batch["items"]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """BPR (Rendle et al. 2009): −log σ(s_pos − s_neg), averaged over triples. Reads columns
        0 and 1 only, so a method may append further items to a batch's ``items``."""
        return nn.functional.softplus(output[:, 1] - output[:, 0]).mean()

    def latency_input(self, role: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One user scored over every item: what serving a recommendation list costs."""
        return torch.zeros(1, dtype=torch.long), torch.arange(self.num_items)

    @torch.no_grad()
    def scores(self, model: nn.Module, users: torch.Tensor) -> torch.Tensor:
        """[len(users), items] scores of ``model`` for every item, in eval mode."""
        was_training = model.training
        model.eval()
        items = torch.arange(self.num_items)
        rows = [call_model(model, (users[start:start + EVAL_USERS], items)).output
                for start in range(0, len(users), EVAL_USERS)]
        model.train(was_training)
        return torch.cat(rows)

    def evaluate(self, model: nn.Module, split: str, role: str, reference: nn.Module | None = None) -> dict[str, float]:
        """Full-ranking NDCG, recall and MRR at 10, the same on sampled candidate sets
        (``sampled99_ndcg_10`` ...), and with ``reference`` the share of its top 10 the model
        shares (``fidelity``)."""
        held_out = self.splits[split]
        scores = self.scores(model, held_out.users)
        candidates = self.candidates(split)
        full = scores.masked_fill(~candidates, float("-inf"))
        metrics = ranking_metrics(target_rank(full, held_out.items), CUTOFF)
        for size, negatives in self.sampled_negatives[split].items():
            sampled = scores.gather(1, torch.cat([held_out.items[:, None], negatives], 1))
            metrics.update(ranking_metrics(target_rank(sampled, torch.zeros_like(held_out.items)), CUTOFF,
                                           prefix=f"sampled{size}_"))
        if reference is not None:
            theirs = self.scores(reference, held_out.users).masked_fill(~candidates, float("-inf"))
            metrics["fidelity"] = top_overlap(full, theirs, CUTOFF)
        return metrics

    def candidates(self, split: str) -> torch.Tensor:
        """[evaluated users, items] bool: what each user's held-out item of ``split`` is ranked against."""
        held_out = self.splits[split]
        mask = ~self.seen[held_out.users]
        mask[torch.arange(len(held_out)), held_out.items] = True
        return mask

    def sample_unseen(self, users: torch.Tensor, count: int, generator: torch.Generator,
                      excluded: torch.Tensor) -> torch.Tensor:
        """[len(users), count] items drawn uniformly, with replacement, among those ``excluded``
        ([users, items] bool) does not mark for each user; by rejection, as excluded items are few."""
        items = torch.randint(self.num_items, (len(users), count), generator=generator)
        while True:
            rejected = excluded[users[:, None].expand_as(items), items]
            if not rejected.any():
                return items
            items[rejected] = torch.randint(self.num_items, (int(rejected.sum()),), generator=generator)

    def _never_seen(self, users: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        """[len(users), count] distinct items each user never interacted with, uniformly drawn."""
        keys = torch.rand(len(users), self.num_items, generator=generator).masked_fill(self.seen[users], 2.0)
        return keys.topk(count, 1, largest=False).indices


def _matrix(pairs: Interactions, num_users: int, num_items: int) -> torch.Tensor:
    matrix = torch.zeros(num_users, num_items, dtype=torch.bool)
    matrix[pairs.users, pairs.items] = True
    return matrix
