"""Methods that own their training loop: dml (online peers), ban (born-again generations) and takd
(teacher assistant), trained for real on a tiny random task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kdbench_methods.ban import BAN
from kdbench_methods.dml import DML, mutual_losses
from kdbench_methods.kd import KD
from kdbench_methods.student_only import StudentOnly
from kdbench_methods.takd import TAKD
from torch import nn

from kdbench import Teacher, TrainContext, train
from tests.methods_fixtures import TinyNet, one_thread, student_net, teacher_net, tiny_task  # noqa: F401

TASK = tiny_task(epochs=2)


class Recorder:
    """Stands in for the runner: builds models on request, collects logged and per-epoch metrics."""

    def __init__(self) -> None:
        self.built: list[str | None] = []
        self.models: list[nn.Module] = []
        self.logged: dict[str, list[int]] = {}
        self.epochs: list[dict[str, float]] = []

    def build(self, name: str | None) -> nn.Module:
        self.built.append(name)
        model = TinyNet((3, 4, 5), stride3=2) if name is None else TinyNet((4, 5, 6))
        self.models.append(model)
        return model

    def log(self, metrics: dict[str, float], step: int | None) -> None:
        for key in metrics:
            self.logged.setdefault(key, []).append(step)

    def context(self, model: nn.Module, method, teacher=None) -> TrainContext:
        return TrainContext(task=TASK, model=model, role="student", recipe=TASK.recipe("student"),
                            seed=0, method=method, teachers=(teacher,) if teacher else (), build_model=self.build,
                            log=self.log, on_epoch=lambda _, metrics: self.epochs.append(metrics))


def student_only_weights() -> dict[str, torch.Tensor]:
    model = student_net()
    return train(Recorder().context(model, StudentOnly(TASK, []))).state_dict()


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def changed(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --- dml ----------------------------------------------------------------------------------

def test_dml_with_one_peer_trains_exactly_like_student_only():
    model = student_net()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    recorder = Recorder()
    trained = train(recorder.context(model, DML(TASK, [], peers=1)))
    assert trained is model and recorder.built == []
    assert changed(trained, initial)
    assert_same_weights(trained.state_dict(), student_only_weights())


def test_mutual_losses_are_cross_entropy_plus_mean_kl_from_the_other_peers():
    generator = torch.Generator().manual_seed(0)
    outputs = [torch.randn(4, 4, generator=generator, requires_grad=True) for _ in range(3)]
    batch = {"y": torch.tensor([0, 1, 2, 3])}
    terms = mutual_losses(TASK, batch, outputs)

    def probs(z: torch.Tensor) -> np.ndarray:
        e = np.exp(z.detach().double().numpy())
        return e / e.sum(1, keepdims=True)

    p = [probs(z) for z in outputs]

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        return float((a * np.log(a / b)).sum(1).mean())

    for k in range(3):
        others = [kl(p[j], p[k]) for j in range(3) if j != k]
        assert terms[f"mutual{k + 1}"].item() == pytest.approx(np.mean(others), rel=1e-5)
        ce = -np.log(p[k][np.arange(4), [0, 1, 2, 3]]).mean()
        assert terms[f"task{k + 1}"].item() == pytest.approx(ce, rel=1e-5)
    terms["mutual1"].backward()  # peer 1 learns from the others; they are not pulled towards it
    assert outputs[0].grad is not None and outputs[1].grad is None and outputs[2].grad is None


def test_dml_trains_every_peer_and_logs_their_validation_metrics():
    model = student_net()
    method = DML(TASK, [], peers=3)
    recorder = Recorder()
    trained = train(recorder.context(model, method))
    assert trained is model and recorder.built == [None, None]
    peers = [model, *recorder.models]
    assert all(a is not b for a, b in zip(peers, peers[1:], strict=False))
    per_peer = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in method.parameters()) == 2 * per_peer  # the extra peers
    assert recorder.logged["peer2_val_accuracy"] == [1, 2]
    assert recorder.logged["peer3_val_accuracy"] == [1, 2]
    assert len(recorder.epochs) == 2 and "train_loss_mutual3" in recorder.epochs[0]
    fresh = TinyNet((3, 4, 5), stride3=2)
    for peer in peers[1:]:
        assert changed(peer, fresh.state_dict())


# --- ban ----------------------------------------------------------------------------------

def test_ban_first_generation_is_the_student_only_baseline():
    model = student_net()
    trained = train(Recorder().context(model, BAN(TASK, [], generations=1)))
    assert_same_weights(trained.state_dict(), student_only_weights())


def test_ban_distils_each_generation_from_the_previous_and_logs_each():
    model = student_net()
    recorder = Recorder()
    trained = train(recorder.context(model, BAN(TASK, [], generations=3)))
    assert recorder.built == [None, None] and trained is recorder.models[-1]
    for generation in (1, 2, 3):
        assert recorder.logged[f"gen{generation}_val_accuracy"] == [1, 2]
    assert "gen1_train_loss_kd" not in recorder.logged  # labels alone
    assert recorder.logged["gen2_train_loss_kd"] == [1, 2]
    assert len(recorder.epochs) == 2  # only the returned generation gives the run's own curves


# --- takd ---------------------------------------------------------------------------------

def test_takd_distils_the_assistant_from_the_teacher_then_the_student_from_the_assistant():
    teacher = Teacher(TASK, teacher_net(), method="takd", needs="logits", cached=True)
    model = student_net()
    recorder = Recorder()
    trained = train(recorder.context(model, TAKD(TASK, [teacher], assistant="mid-net"), teacher))
    assert trained is model and recorder.built == ["mid-net"]
    assert recorder.logged["assistant_val_accuracy"] == [1, 2]
    assert len(recorder.epochs) == 2

    # The same two steps by hand with plain KD give the same student.
    by_hand = Recorder()
    student_net()  # leaves the RNG where the TAKD run built its assistant
    assistant = by_hand.build("mid-net")
    assistant = train(by_hand.context(assistant, KD(TASK, [teacher]), teacher))
    reference = student_net()
    frozen = Teacher(TASK, assistant, method="kd", needs="logits", cached=True)
    reference = train(by_hand.context(reference, KD(TASK, [frozen]), frozen))
    assert_same_weights(trained.state_dict(), reference.state_dict())


@pytest.mark.parametrize("method_class, bad", [
    (DML, {"peers": 0}), (DML, {"peers": 1.5}), (BAN, {"generations": 0}), (BAN, {"T": 0.0}),
    (TAKD, {"assistant": ""}), (TAKD, {"alpha": -0.1}),
])
def test_nonsense_parameters_are_refused(method_class, bad):
    with pytest.raises(ValueError):
        method_class.validate_params({**method_class.defaults, **bad})
