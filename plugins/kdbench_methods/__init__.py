"""Built-in distillation methods, one module each; registered through the ``kdbench`` entry point.

Response-based: kd, kd-reverse, dkd, dist, ls-kd, multi-teacher. Feature-based: fitnets, at,
nst, vid. Relation-based: pkt, rkd, sp, cc, crd (and its InfoNCE variant crd-infonce). Training
schemes: dml (online peers), ban (self-distillation over generations), takd (teacher assistant).
Baseline: student-only.
The plugin declares the ``classification`` kind its methods are written for (the vision,
speech and graph plugins offer its tasks): student-only is its baseline, plain kd its reference.
"""

from __future__ import annotations

from kdbench import Kind, Method, Metric, hookimpl
from kdbench_methods.at import AT
from kdbench_methods.ban import BAN
from kdbench_methods.cc import CC
from kdbench_methods.crd import CRD, CRDInfoNCE
from kdbench_methods.dist import DIST
from kdbench_methods.dkd import DKD
from kdbench_methods.dml import DML
from kdbench_methods.fitnets import FitNets
from kdbench_methods.kd import KD
from kdbench_methods.kd_reverse import ReverseKD
from kdbench_methods.ls_kd import LSKD
from kdbench_methods.multi_teacher import MultiTeacher
from kdbench_methods.nst import NST
from kdbench_methods.pkt import PKT
from kdbench_methods.rkd import RKD
from kdbench_methods.sp import SP
from kdbench_methods.specialists import Specialists
from kdbench_methods.student_only import StudentOnly
from kdbench_methods.takd import TAKD
from kdbench_methods.vid import VID


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [StudentOnly, KD, ReverseKD, DKD, DIST, LSKD, MultiTeacher, FitNets, AT, NST, VID, PKT,
            RKD, SP, CC, CRD, CRDInfoNCE, DML, BAN, TAKD, Specialists]


CLASSIFICATION = Kind(
    "classification", baseline="student-only", reference="kd",
    metrics=(
        Metric("accuracy", higher_is_better=True, description="top-1 accuracy on the test split"),
        Metric("errors", higher_is_better=False, description="misclassified test samples", decimals=1),
        Metric("nll", higher_is_better=False, positive=True, description="negative log-likelihood of the labels"),
        Metric("ece", higher_is_better=False, description="expected calibration error, 15 bins"),
        Metric("fidelity", higher_is_better=True, label="fidelity",
               description="top-1 agreement with the teacher"),
    ),
    description="Labels from inputs (images, audio, graph nodes); the metrics of ClassificationTask.",
)


@hookimpl
def kdbench_kinds() -> list[Kind]:
    return [CLASSIFICATION]
