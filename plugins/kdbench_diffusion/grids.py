"""Grids of generated images, kept per run and logged to the run's MLflow artifacts where possible.

The core gives a task's ``evaluate`` no channel to a run's artifacts, so the plugin follows the
runner's lifecycle hooks: ``begin`` (at run start) names the run, ``record`` (in evaluate)
writes each step count's grid under ``<cache>/diffusion/grids/<run_id>/``, and ``finish`` (at
run end) logs that folder as the run's ``samples/`` artifacts when the store is the one
``MLFLOW_TRACKING_URI`` names (the core does not tell plugins a ``--tracking-uri``); otherwise
the grids stay in the cache folder only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torchvision.utils import save_image

from kdbench import cache_dir

GRID_SIDE = 8
_current: dict[str, str | None] = {"run_id": None}
log = logging.getLogger(__name__)


def folder(run_id: str) -> Path:
    return cache_dir() / "diffusion" / "grids" / run_id


def begin(run_id: str) -> None:
    _current["run_id"] = run_id


def record(samples: torch.Tensor, name: str) -> Path | None:
    """Save the first 8×8 image samples (in [−1, 1]) of the current run as ``name``; 2-D toy data is not drawn."""
    run_id = _current["run_id"]
    if run_id is None or samples.dim() != 4:
        return None
    path = folder(run_id) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(samples[: GRID_SIDE**2].clamp(-1, 1), path, nrow=GRID_SIDE, normalize=True, value_range=(-1, 1))
    return path


def finish(run_id: str) -> None:
    _current["run_id"] = None
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None or not folder(run_id).is_dir():
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).log_artifacts(run_id, str(folder(run_id)), "samples")
    except MlflowException as error:  # the run lives in another store (--tracking-uri)
        log.warning("sample grids of run %s stay in %s (%s)", run_id, folder(run_id), error)
