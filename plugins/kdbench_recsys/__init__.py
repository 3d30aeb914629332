"""Recommendation: top-N ranking distillation on MovieLens-100K (implicit feedback).

Task ``ml-100k`` (every rating a positive unless ``min_rating`` says otherwise, split
leave-last-out per user by time, full-ranking NDCG@10 primary); teacher ``bpr-mf-200``,
students ``bpr-mf-20`` and ``bpr-mf-10``. Methods of the ``ranking`` kind: ``score-kd``
(point-wise score regression), ``rd`` (Tang & Wang 2018), ``cd`` (Lee et al. 2019) and
``rrd`` and ``de`` (Kang et al. 2020); ``student-only`` comes from kdbench_methods. The plugin
declares the ``ranking`` kind: student-only its baseline, score-kd its reference, and recall,
MRR and the sampled metrics its leaderboard columns beside the primary NDCG@10.
"""

from __future__ import annotations

from kdbench import DatasetSpec, Kind, Method, Metric, ModelSpec, TaskSpec, hookimpl
from kdbench_recsys.cd import CD
from kdbench_recsys.de import DE
from kdbench_recsys.models import STUDENTS, TEACHER
from kdbench_recsys.movielens import ML100K, build_ml100k
from kdbench_recsys.rd import RD
from kdbench_recsys.rrd import RRD
from kdbench_recsys.score_kd import ScoreKD


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [TaskSpec("ml-100k", "ranking", "recommender", build_ml100k,
                     "MovieLens-100K as implicit feedback (ratings ≥ min_rating), last interaction per user "
                     "tested, second-last validated; full-ranking NDCG@10", options={"min_rating": 1})]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    return [TEACHER]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return list(STUDENTS)


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [ScoreKD, RD, CD, RRD, DE]


@hookimpl
def kdbench_datasets() -> list[DatasetSpec]:
    return [ML100K]


RANKING = Kind(
    "ranking", baseline="student-only", reference="score-kd",
    metrics=(
        Metric("ndcg_10", higher_is_better=True, description="full-ranking NDCG@10 of the held-out item"),
        Metric("fidelity", higher_is_better=True, label="fidelity",
               description="share of the teacher's top 10 that the model's top 10 holds"),
        Metric("recall_10", higher_is_better=True, label="recall@10",
               description="share of users whose held-out item is in the full-ranking top 10"),
        Metric("mrr_10", higher_is_better=True, label="mrr@10",
               description="reciprocal rank of the held-out item in the full ranking, 0 below the top 10"),
        Metric("sampled99_ndcg_10", higher_is_better=True, label="sampled-99 ndcg@10",
               description="NDCG@10 of the held-out item ranked against 99 random items the user never "
                           "interacted with, as NCF and DE-RRD report; it can order methods differently "
                           "from full ranking (Krichene & Rendle, KDD 2020)"),
        Metric("sampled99_recall_10", higher_is_better=True, label="sampled-99 hr@10",
               description="hit rate at 10 (recall, with one held-out item) against the same 99 negatives"),
        Metric("sampled499_ndcg_10", higher_is_better=True, label="sampled-499 ndcg@10",
               description="as sampled-99 ndcg@10, against 499 negatives"),
        Metric("sampled499_recall_10", higher_is_better=True, label="sampled-499 hr@10",
               description="as sampled-99 hr@10, against 499 negatives"),
        Metric("sampled*_ndcg_10", higher_is_better=True),
        Metric("sampled*_recall_10", higher_is_better=True),
        Metric("sampled*_mrr_10", higher_is_better=True),
    ),
    description="Top-N recommendation from implicit feedback, scored on the full ranking. The "
                "sampled metrics (the held-out item against 99 or 499 random negatives) are shown "
                "labelled as such: sampled metrics can order methods differently from full ranking "
                "(Krichene & Rendle, KDD 2020), and a reader comparing with the papers that report "
                "them needs both.",
)
"""score-kd, point-wise regression of the teacher's scores, is the plain KD of ranking distillation."""


@hookimpl
def kdbench_kinds() -> list[Kind]:
    return [RANKING]
