"""Training: one engine for every role and method, the context it runs in, and the view a loss sees.

``context`` holds what a run trains with; ``view`` is what a method's loss sees per step
(prepared by the task kind's plugin where the batch alone is not enough); ``engine`` is the
one loop — epochs or optimiser steps — with the seeding, divergence rule, logging and
checkpoint rule every run shares.
"""

from kdbench.training.context import TrainContext
from kdbench.training.engine import BatchStream, DivergedError, run_training, train
from kdbench.training.view import TrainingView

__all__ = ["BatchStream", "DivergedError", "TrainContext", "TrainingView", "run_training", "train"]
