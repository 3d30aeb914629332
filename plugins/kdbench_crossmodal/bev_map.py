"""nuScenes-style BEV detection mAP: boxes match on centre distance, not overlap.

Caesar et al., "nuScenes: A multimodal dataset for autonomous driving" (CVPR 2020): for each
class and distance threshold {0.5, 1, 2, 4} m, detections of all frames are taken by falling
score and each is a true positive when an unmatched ground-truth centre of its class in its
frame lies within the threshold (the nearest such is taken). Precision is sampled at 101
recall points, the points below 10% recall are dropped, 10% is subtracted from precision
(floored at 0) and the mean is rescaled to [0, 1] — nuScenes' ``calc_ap``. One difference:
the precision sampled at a recall is the envelope (the best precision at that recall or
beyond, as COCO and VOC take it), where nuScenes interpolates the raw curve linearly, whose
value at a repeated recall is undefined; the envelope makes AP well defined and hand-checkable.
A class's AP is its mean over the thresholds; mAP
the mean over classes that have ground truth. Translation error: the mean centre distance of
true positives at the 2 m threshold, averaged over classes (1.0 for a class without any, as
nuScenes caps it).
"""

from __future__ import annotations

import numpy as np

from kdbench_crossmodal.kitti_format import CLASSES

THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
MIN_RECALL = 0.1
MIN_PRECISION = 0.1


def match(predictions: list[np.ndarray], truths: list[np.ndarray], kind: int,
          threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy matching of one class: (is-true-positive, centre distance) per detection by falling score,
    and the number of ground-truth objects.

    ``predictions`` per frame are [K, ≥4] (class, x, y, score, ...); ``truths`` per frame [M, ≥3]
    (class, x, y, ...).
    """
    found = [(p[3], f, p[1], p[2]) for f, frame in enumerate(predictions) for p in frame if p[0] == kind]
    found.sort(key=lambda item: -item[0])
    centres = [t[t[:, 0] == kind, 1:3] for t in truths]
    taken = [np.zeros(len(c), dtype=bool) for c in centres]
    positive, distance = np.zeros(len(found), dtype=bool), np.full(len(found), np.inf)
    for n, (_, f, x, y) in enumerate(found):
        gaps = np.hypot(centres[f][:, 0] - x, centres[f][:, 1] - y)
        gaps[taken[f]] = np.inf
        if len(gaps) and gaps.min() < threshold:
            nearest = int(gaps.argmin())
            taken[f][nearest] = True
            positive[n], distance[n] = True, gaps[nearest]
    return positive, distance, sum(len(c) for c in centres)


def average_precision(positive: np.ndarray, total: int) -> float:
    """nuScenes' AP of a ranked list of true/false positives against ``total`` ground-truth objects."""
    if not positive.any():
        return 0.0
    hits = np.cumsum(positive)
    recall = hits / total
    precision = hits / np.arange(1, len(positive) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    levels = np.linspace(0, 1, 101)
    at = np.searchsorted(recall, levels, side="left")
    sampled = np.where(at < len(envelope), envelope[np.minimum(at, len(envelope) - 1)], 0.0)
    clipped = np.clip(sampled[round(100 * MIN_RECALL) + 1:] - MIN_PRECISION, 0, None)
    return float(clipped.mean() / (1 - MIN_PRECISION))


def bev_map(predictions: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """``map`` (primary), ``map_<class>`` for classes with ground truth, and ``ate`` (metres)."""
    metrics: dict[str, float] = {}
    errors = []
    for kind, name in enumerate(CLASSES):
        precisions = []
        for threshold in THRESHOLDS:
            positive, distance, total = match(predictions, truths, kind, threshold)
            if total == 0:
                break
            precisions.append(average_precision(positive, total))
            if threshold == 2.0:
                errors.append(float(distance[positive].mean()) if positive.any() else 1.0)
        if precisions:
            metrics[f"map_{name.lower()}"] = float(np.mean(precisions))
    metrics["map"] = float(np.mean(list(metrics.values()))) if metrics else 0.0
    metrics["ate"] = float(np.mean(errors)) if errors else 1.0
    return metrics
