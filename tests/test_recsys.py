"""The recommender plugin: the leave-last-out split, ranking metrics by hand, full-ranking candidates,
and the ranking-distillation losses (RD, RRD) against hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch
from kdbench_recsys.cd import CD, sampling_odds
from kdbench_recsys.de import DE, DistillationExperts
from kdbench_recsys.distillation import RankingDistillation
from kdbench_recsys.metrics import ranking_metrics, target_rank, top_overlap
from kdbench_recsys.models import MatrixFactorisation
from kdbench_recsys.movielens import build_ml100k, load_ratings
from kdbench_recsys.rd import RD, dynamic_weights, position_weights, rd_loss
from kdbench_recsys.rrd import RRD, relaxed_ranking_loss
from kdbench_recsys.score_kd import ScoreKD
from kdbench_recsys.split import Interactions, leave_last_out
from kdbench_recsys.task import RankingTask
from kdbench_recsys.view import BPR_PAIR, RankingView, positions
from torch import nn

from kdbench import ModelOutput, Recipe, Teacher, TrainContext, UserError, call_model, train
from tests.conftest import REPO

RECIPE = Recipe(epochs=1, batch_size=8, optimizer="adam", lr=0.01, schedule="constant")


def toy_task(sampled: tuple[int, ...] = (3,)) -> RankingTask:
    """4 users × 12 items, user u's training items u, u+1, u+2, u+3; val item u+4, test item u+5."""
    users = torch.arange(4).repeat_interleave(4)
    train_items = torch.cat([torch.arange(u, u + 4) for u in range(4)])
    everyone = torch.arange(4)
    splits = {"train": Interactions(users, train_items), "val": Interactions(everyone, everyone + 4),
              "test": Interactions(everyone, everyone + 5)}
    return RankingTask(splits, num_users=4, num_items=12, recipes={"teacher": RECIPE, "student": RECIPE},
                       sampled=sampled)


class FixedScores(nn.Module):
    """A 'model' that returns a fixed [users, items] score table, as the ranking contract asks."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> ModelOutput:
        rows = self.table[users]
        return ModelOutput(rows[:, items] if items.dim() == 1 else rows.gather(1, items), {})


# ----------------------------------------------------------------------------------------
# the split
# ----------------------------------------------------------------------------------------


def test_split_holds_out_each_users_last_two_in_time_ties_by_given_order():
    #            user 0: four at t=1..4       user 1: three, the last two tied    user 2: two only
    users = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2])
    items = torch.tensor([5, 6, 7, 8, 9, 3, 4, 1, 2])
    times = torch.tensor([4, 1, 3, 2, 10, 20, 20, 7, 8])
    split = leave_last_out(users, items, times)
    assert split["test"].users.tolist() == [0, 1] and split["val"].users.tolist() == [0, 1]
    assert split["test"].items.tolist() == [5, 4]  # t=4 for user 0; the later row of the t=20 tie for user 1
    assert split["val"].items.tolist() == [7, 3]
    train = sorted(zip(split["train"].users.tolist(), split["train"].items.tolist(), strict=True))
    assert train == [(0, 6), (0, 8), (1, 9), (2, 1), (2, 2)]  # user 2, too few to hold out, all train


def test_movielens_split_one_val_and_one_test_per_user_from_their_own_history(require_data):
    require_data("ml-100k", "u.data")
    ratings = load_ratings()
    task = build_ml100k()
    when = {(u, i): t for u, i, _, t in ratings.tolist()}
    val, test, train = task.splits["val"], task.splits["test"], task.splits["train"]
    assert val.users.tolist() == test.users.tolist() == list(range(943))
    assert len(train) + len(val) + len(test) == 100_000
    last_train = torch.zeros(943, dtype=torch.long)
    for user, item in zip(train.users.tolist(), train.items.tolist(), strict=True):
        last_train[user] = max(last_train[user], when[user, item])
    for user in range(943):
        t_val, t_test = when[user, int(val.items[user])], when[user, int(test.items[user])]
        assert last_train[user] <= t_val <= t_test  # chronological (pairs exist: KeyError otherwise)
    assert not task.seen_in_train[val.users, val.items].any() and not task.seen_in_train[test.users, test.items].any()


def test_min_rating_keeps_fewer_positives_and_is_checked(require_data):
    require_data("ml-100k", "u.data")
    liked = build_ml100k(min_rating=4)
    assert liked.num_items == 1682 and len(liked.splits["test"]) < 943
    assert len(liked.splits["train"]) + len(liked.splits["val"]) + len(liked.splits["test"]) == 55_375
    with pytest.raises(UserError, match="min_rating must be an integer from 1 to 5"):
        build_ml100k(min_rating=6)


def test_missing_ratings_file_is_a_one_line_user_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_DATA", str(tmp_path / "empty"))
    with pytest.raises(UserError) as error:
        build_ml100k()
    message = str(error.value)
    assert "\n" not in message and "file u.data not found" in message and "kdbench data fetch ml-100k" in message


# ----------------------------------------------------------------------------------------
# metrics and evaluation
# ----------------------------------------------------------------------------------------


def test_metrics_of_a_three_user_ranking_by_hand():
    scores = torch.tensor([[0.9, 0.1, 0.2, 0.3],    # target 0 is first: rank 0
                           [0.5, 0.8, 0.1, 0.4],    # target 0 is second: rank 1
                           [0.4, 0.4, 0.7, 0.1]])   # target 1 ties with item 0, below item 2: rank 2
    ranks = target_rank(scores, torch.tensor([0, 0, 1]))
    assert ranks.tolist() == [0, 1, 2]  # the tie counts against the target
    at2 = ranking_metrics(ranks, cutoff=2)
    assert at2["ndcg_2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert at2["recall_2"] == pytest.approx(2 / 3)
    assert at2["mrr_2"] == pytest.approx((1 + 1 / 2) / 3)
    at3 = ranking_metrics(ranks, cutoff=3, prefix="sampled3_")
    assert at3["sampled3_ndcg_3"] == pytest.approx((1 + 1 / math.log2(3) + 1 / 2) / 3)
    assert at3["sampled3_mrr_3"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    reference = torch.tensor([[0.1, 0.9, 0.2, 0.8],   # its top 2 {1, 3}, ours {0, 3}: one shared
                              [0.9, 0.8, 0.1, 0.2],   # {0, 1} and ours {1, 0}: both
                              [0.1, 0.2, 0.3, 0.4]])  # {3, 2} and ours {2, 0 or 1}: one
    assert top_overlap(scores, reference, cutoff=2) == pytest.approx((1 + 2 + 1) / 6)


def test_full_ranking_leaves_out_training_items_and_the_other_held_out_item():
    task = toy_task()
    # Every user scores its own training items highest, then its test item, then its val item.
    table = -torch.arange(12, dtype=torch.float).repeat(4, 1) / 100
    for user in range(4):
        table[user, user:user + 4] = 10.0
        table[user, user + 5] = 5.0
        table[user, user + 4] = 4.0
    model = FixedScores(table)
    test = task.evaluate(model, "test", "student")
    val = task.evaluate(model, "val", "student")
    assert test["ndcg_10"] == test["mrr_10"] == 1.0  # training items do not count above the target
    assert val["ndcg_10"] == val["mrr_10"] == 1.0  # nor does the test item when validating
    candidates = task.candidates("val")
    assert candidates.sum(1).tolist() == [12 - 4 - 1] * 4
    everyone = torch.arange(4)
    assert candidates[everyone, everyone + 4].all() and not candidates[everyone, everyone + 5].any()
    # With the candidates unmasked the four training items would rank above the target.
    assert target_rank(task.scores(model, torch.arange(4)), task.splits["test"].items).tolist() == [4] * 4


def test_sampled_negatives_are_fixed_distinct_and_never_interacted_with():
    task, again = toy_task(sampled=(3, 6)), toy_task(sampled=(3, 6))
    for split in ("val", "test"):
        negatives = task.sampled_negatives[split][6]
        assert torch.equal(negatives, again.sampled_negatives[split][6])
        assert not task.seen[task.splits[split].users[:, None], negatives].any()
        assert all(len(set(row)) == 6 for row in negatives.tolist())
    with pytest.raises(UserError, match="sampled metrics need 7 negatives"):
        toy_task(sampled=(7,))


def test_training_batches_are_bpr_triples_with_unseen_negatives():
    task = toy_task()
    batches = list(task.batches("train", RECIPE, torch.Generator().manual_seed(1)))
    index = torch.cat([b["index"] for b in batches])
    assert sorted(index.tolist()) == list(range(16))
    for batch in batches:
        assert torch.equal(batch["items"][:, 0], task.splits["train"].items[batch["index"]])
        assert not task.seen_in_train[batch["user"], batch["items"][:, 1]].any()
    assert not task.deterministic(RECIPE)  # negatives change per epoch: teacher outputs are never cached
    output = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    assert task.loss(output, {}).item() == pytest.approx((math.log(1 + math.exp(-2)) + math.log(2)) / 2)


def test_matrix_factorisation_scores_are_dot_products_either_way():
    torch.manual_seed(0)
    model = MatrixFactorisation(3, 5, dim=4)
    users = torch.tensor([2, 0])
    full = call_model(model, (users, torch.arange(5)))
    own = call_model(model, (users, torch.tensor([[4, 1], [0, 0]])))
    expected = model.users.weight[users] @ model.items.weight.T
    assert torch.allclose(full.output, expected)
    assert torch.allclose(own.output, torch.stack([expected[0, [4, 1]], expected[1, [0, 0]]]))
    assert full.features["user"].shape == (2, 4) and own.features["item"].shape == (2, 2, 4)
    assert sum(p.numel() for p in model.parameters()) == (3 + 5) * 4  # size = embedding parameters


# ----------------------------------------------------------------------------------------
# distillation losses, by hand
# ----------------------------------------------------------------------------------------


def test_rd_weights_and_loss_by_hand():
    w = position_weights(2, sharpness=1.0)
    e = math.exp(-1)
    assert w.tolist() == pytest.approx([1 / (1 + e), e / (1 + e)])
    dynamic = dynamic_weights(torch.tensor([[0, 4, 1]]), torch.tensor([0, 1, 2]), mu=0.1)
    assert dynamic[0].tolist() == pytest.approx([0.0, math.tanh(0.3), 0.0])  # ahead of the teacher: 0
    scores = torch.tensor([[0.0, math.log(3)]])  # σ = 1/2 and 3/4
    expected = w[0].item() * math.log(2) + w[1].item() * math.log(4 / 3)
    assert rd_loss(scores, w[None]).item() == pytest.approx(expected)
    assert expected == pytest.approx(0.58410, abs=1e-5)  # 0.731059 · 0.693147 + 0.268941 · 0.287682


def test_rrd_loss_by_hand():
    # interesting [2, 0] in the teacher's order, one uninteresting 0:
    # −[2 − log(e² + e⁰ + e⁰)] − [0 − log(e⁰ + e⁰)] = log(e² + 2) + log 2 − 2
    loss = relaxed_ranking_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0]]))
    assert loss.item() == pytest.approx(math.log(math.e**2 + 2) + math.log(2) - 2)
    assert loss.item() == pytest.approx(0.93269, abs=1e-5)  # 2.239545 + 0.693147 − 2
    # large scores stay finite, and swapping the interesting items' order costs more
    big = relaxed_ranking_loss(torch.tensor([[900.0, 100.0]]), torch.tensor([[0.0, -50.0]]))
    assert torch.isfinite(big) and big.item() == pytest.approx(0.0, abs=1e-6)
    swapped = relaxed_ranking_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[0.0]]))
    assert swapped.item() > loss.item()


def test_positions_rank_excluded_items_last():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    ranked, rank = positions(scores, torch.tensor([[False, True, False, False]]))
    assert ranked.tolist() == [[3, 2, 0, 1]] and rank.tolist() == [[2, 3, 1, 0]]


def test_cd_odds_move_from_the_teachers_ranking_to_the_rank_discrepancy():
    teacher_rank = torch.tensor([[0, 1, 2]])
    student_rank = torch.tensor([[2, 1, 0]])
    early = sampling_odds(teacher_rank, student_rank, temperature=1.0, epsilon=1.0, guided=0.0)
    late = sampling_odds(teacher_rank, student_rank, temperature=1.0, epsilon=1.0, guided=1.0)
    z = 1 + math.exp(-1) + math.exp(-2)
    assert early[0].tolist() == pytest.approx([1 / z, math.exp(-1) / z, math.exp(-2) / z])
    assert late[0].tolist() == pytest.approx([1.0, 0.0, 0.0])  # only item 0 is ranked lower by the student


@pytest.mark.parametrize("method", [ScoreKD, RD, CD, RRD])
def test_each_method_trains_with_finite_losses_that_reach_the_student(method: type[RankingDistillation]):
    task = toy_task()
    torch.manual_seed(0)
    teacher = MatrixFactorisation(4, 12, dim=8)
    student = MatrixFactorisation(4, 12, dim=2)
    small = {RD: {"K": 3}, RRD: {"K": 2, "L": 2, "N": 4}, CD: {"samples": 3}}.get(method, {})
    handle = Teacher(task, teacher, method=method.name, needs=method.needs, cached=False)
    distiller = method(task, [handle], **small)
    before = student.users.weight.detach().clone()
    logged = {}
    context = TrainContext(task=task, model=student, role="student", recipe=RECIPE.updated({"epochs": 2}), seed=0,
                           method=distiller, teachers=(handle,), on_epoch=lambda epoch, metrics: logged.update(metrics))
    train(context)
    terms = {k for k in logged if k.startswith("train_loss_")}
    assert len(terms) == 2 and all(math.isfinite(logged[k]) for k in terms)
    assert not torch.equal(before, student.users.weight)
    # every term, on its own, has a finite, non-zero gradient for the student
    view = RankingView(context, torch.Generator().manual_seed(0))
    view.epoch_start(1)
    batch = view.batch(next(task.batches("train", RECIPE, torch.Generator().manual_seed(0))))
    assert batch["items"].shape[1] > BPR_PAIR or method is ScoreKD
    for name, term in distiller.loss(batch, view.student(batch), view.teachers(batch)).items():
        student.zero_grad()
        term.backward(retain_graph=True)
        grads = torch.cat([p.grad.flatten() for p in student.parameters()])
        assert torch.isfinite(grads).all() and grads.abs().sum() > 0, name


def test_one_expert_is_a_plain_reconstruction_and_the_temperature_anneals():
    torch.manual_seed(0)
    experts = DistillationExperts(student_dim=2, teacher_dim=3, count=1)
    student, teacher = torch.randn(4, 2), torch.randn(4, 3)
    expected = (experts.experts[0](student) - teacher).pow(2).sum(1).mean()
    assert experts(student, teacher, temperature=0.5).item() == pytest.approx(expected.item())
    method = DE(toy_task(), [], final_temperature=0.01)
    method.epochs = 3
    temperatures = []
    for epoch in (1, 2, 3):
        method.epoch = epoch
        temperatures.append(method.temperature())
    assert temperatures == pytest.approx([1.0, 0.1, 0.01])


def test_de_trains_its_experts_with_the_student_and_every_term_reaches_both():
    task = toy_task()
    torch.manual_seed(0)
    teacher, student = MatrixFactorisation(4, 12, dim=8), MatrixFactorisation(4, 12, dim=2)
    handle = Teacher(task, teacher, method="de", needs="features", cached=False)
    distiller = DE(task, [handle])
    logged = {}
    context = TrainContext(task=task, model=student, role="student", recipe=RECIPE.updated({"epochs": 2}), seed=0,
                           method=distiller, teachers=(handle,), on_epoch=lambda epoch, metrics: logged.update(metrics))
    train(context)
    assert math.isfinite(logged["train_loss_task"]) and math.isfinite(logged["train_loss_de"])
    assert sum(p.numel() for p in distiller.parameters()) > 0  # the experts, counted as the method's extras
    batch = next(task.batches("train", RECIPE, torch.Generator().manual_seed(0)))
    terms = distiller.loss(batch, call_model(student, task.model_input(batch, "student")),
                           [call_model(teacher, task.model_input(batch, "teacher"))])
    terms["de"].backward()
    for reached in (student.users.weight, student.items.weight, distiller.users.selector.weight,
                    distiller.items.experts[0][0].weight):
        assert torch.isfinite(reached.grad).all() and reached.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------
# registration, leaderboard and suites
# ----------------------------------------------------------------------------------------


def _ranking_run(run: int, method: str, metrics: dict[str, float], skipped: bool = False):
    from kdbench.tracking import RunRecord

    tags = {"kdbench.task": "ml-100k", "kdbench.kind": "ranking", "kdbench.teacher": "bpr-mf-200",
            "kdbench.student": "bpr-mf-10", "kdbench.method": method, "kdbench.variant": method,
            "kdbench.role": "distill", "kdbench.seed": str(run), "kdbench.config_hash": f"{method}/{run}",
            "kdbench.checkpoint": "final", "kdbench.primary_metric": "ndcg_10", "kdbench.higher_is_better": "true",
            **({"kdbench.skipped": "not today"} if skipped else {})}
    return RunRecord(f"{method}-{run}", "FINISHED", tags, metrics, {}, run, run)


def test_the_ranking_kind_shows_recall_mrr_and_the_sampled_metrics_as_mean_and_std_columns():
    """(0.1, 0.3): mean 0.2, sample std √0.02 = 0.1414; one seed shows its value alone."""
    from kdbench.leaderboard.board import load_board
    from kdbench.leaderboard.columns import columns
    from kdbench.registry import Registry

    kinds = Registry.load().kinds.entries
    board = load_board("recsys", [
        _ranking_run(0, "rd", {"test_ndcg_10": 0.1, "test_recall_10": 0.1, "test_sampled99_ndcg_10": 0.2}),
        _ranking_run(1, "rd", {"test_ndcg_10": 0.1, "test_recall_10": 0.3, "test_sampled99_ndcg_10": 0.4}),
        _ranking_run(0, "cd", {"test_ndcg_10": 0.1, "test_recall_10": 0.5}),
        _ranking_run(0, "de", {}, skipped=True),
    ], kinds)
    shown = {column.header: column for column in columns(board)}
    assert {"recall@10", "sampled-99 ndcg@10"} <= set(shown)
    assert not {"mrr@10", "sampled-99 hr@10", "sampled-499 ndcg@10", "sampled-499 hr@10"} & set(shown)  # none logged
    rows = board.rows.set_index("method")
    cells = {header: [shown[header].cell(rows.loc[method]) for method in ("rd", "cd", "de")]
             for header in ("recall@10", "sampled-99 ndcg@10")}
    assert cells == {"recall@10": ["0.2000 ± 0.1414", "0.5000", ""], "sampled-99 ndcg@10": ["0.3000 ± 0.1414", "", ""]}
    declared = [column.header for column in columns(load_board("none", [], kinds))]
    assert "recall@10" not in declared  # no ranking task on the board: no ranking columns
    assert [metric.label for metric in kinds["ranking"].columns()] == [
        "fidelity", "recall@10", "mrr@10", "sampled-99 ndcg@10", "sampled-99 hr@10", "sampled-499 ndcg@10",
        "sampled-499 hr@10"]


def test_every_metric_the_ranking_task_logs_has_a_declared_direction():
    from kdbench.registry import Registry

    ranking = Registry.load().kinds.entries["ranking"]
    task = toy_task(sampled=(3, 5))
    model = FixedScores(torch.randn(4, 12, generator=torch.Generator().manual_seed(0)))
    logged = task.evaluate(model, "test", "student", reference=model)
    assert "fidelity" in logged and "sampled5_mrr_10" in logged
    assert {name: ranking.metric(name).higher_is_better for name in logged} == dict.fromkeys(logged, True)


def test_plugin_registers_and_suites_validate():
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    registry = Registry.load()
    assert {"score-kd", "rd", "cd", "rrd", "de"} <= set(registry.methods.entries)
    assert {"bpr-mf-20", "bpr-mf-10"} <= set(registry.students.entries)
    for name in ("recsys-ml100k.yaml", "smoke.yaml"):
        load_suite(REPO / "suites" / name, registry)
