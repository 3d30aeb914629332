"""Recommendation: top-N ranking distillation on MovieLens-100K (implicit feedback).

Task ``ml-100k`` (every rating a positive unless ``min_rating`` says otherwise, split
leave-last-out per user by time, full-ranking NDCG@10 primary); teacher ``bpr-mf-200``,
students ``bpr-mf-20`` and ``bpr-mf-10``. Methods of the ``ranking`` kind: ``score-kd``
(point-wise score regression), ``rd`` (Tang & Wang 2018), ``cd`` (Lee et al. 2019) and
``rrd`` and ``de`` (Kang et al. 2020); ``student-only`` comes from kdbench_methods. Recall, MRR and the
sampled metrics join the leaderboard as extra columns.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kdbench import DatasetSpec, Method, ModelSpec, TaskSpec, hookimpl
from kdbench_recsys.cd import CD
from kdbench_recsys.columns import secondary_columns
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


@hookimpl
def kdbench_leaderboard_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> dict[str, Any] | None:
    return secondary_columns(runs, rows)
