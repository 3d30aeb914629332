"""Devices and precision: resolved once, data moved in one place, fp32 losses under autocast,
checkpoints that load wherever they were written, GPUs handed to workers. All on the CPU."""

from __future__ import annotations

import io
import os
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdbench.device import determinism, full_precision, resolve, to_device
from kdbench.errors import UserError
from kdbench.model import ModelOutput
from kdbench.teacher import HiddenFeatures

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def test_auto_is_the_cpu_here_and_named_devices_resolve():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve("auto").type == expected
    assert resolve("cpu") == torch.device("cpu")


@NO_CUDA
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_missing_gpu_is_a_one_line_user_error(name: str):
    with pytest.raises(UserError, match=rf"^--device {name}: this machine has no CUDA device"):
        resolve(name)


@pytest.mark.parametrize("name", ["tpu", "gpu0", "mps"])
def test_an_unknown_device_names_what_is_accepted(name: str):
    with pytest.raises(UserError, match="expected auto, cpu, cuda or cuda:N"):
        resolve(name)


def test_to_device_moves_every_tensor_and_keeps_the_structure():
    Pair = namedtuple("Pair", "left right")
    batch = {"x": torch.ones(2, 3), "index": torch.arange(2), "nodes": [torch.zeros(1), "name"],
             "pair": Pair(torch.ones(1), 7), "graph": (torch.ones(2), None)}
    moved = to_device(batch, torch.device("meta"))
    assert moved["x"].device.type == "meta" and moved["x"].shape == (2, 3)
    assert moved["index"].dtype == torch.long and moved["nodes"][0].device.type == "meta"
    assert moved["nodes"][1] == "name" and moved["graph"][1] is None
    assert isinstance(moved["pair"], Pair) and moved["pair"].right == 7 and moved["pair"].left.is_meta
    assert to_device(batch, torch.device("cpu"))["x"] is batch["x"], "a tensor already there is not copied"
    images = torch.randn(2, 3, 4, 4)
    laid = to_device({"x": images, "y": torch.arange(2)}, torch.device("cpu"), channels_last=True)
    assert laid["x"].is_contiguous(memory_format=torch.channels_last) and torch.equal(laid["x"], images)
    assert not images.is_contiguous(memory_format=torch.channels_last), "the task's own tensor is left as it was"


def test_full_precision_casts_outputs_and_features_but_keeps_hidden_features_hidden():
    output = ModelOutput(torch.ones(2, 3, dtype=torch.bfloat16),
                         {"stage1": torch.ones(2, dtype=torch.float16), "index": torch.arange(2)})
    cast = full_precision(output)
    assert cast.output.dtype == torch.float32 and cast.features["stage1"].dtype == torch.float32
    assert cast.features["index"].dtype == torch.long
    hidden = HiddenFeatures("kd")
    assert full_precision(ModelOutput(torch.ones(1), hidden)).features is hidden


def _kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Hinton's soft-target term, written out: T² · KL(p_teacher ‖ p_student) at temperature T."""
    p_teacher = F.softmax(teacher / temperature, dim=1)
    log_student = F.log_softmax(student / temperature, dim=1)
    return (p_teacher * (p_teacher.log() - log_student)).sum(1).mean() * temperature ** 2


def test_kd_loss_and_gradient_in_bf16_match_fp32_when_the_loss_is_taken_in_fp32():
    from kdbench.device import autocast

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    x, teacher = torch.randn(256, 64), torch.randn(256, 10) * 3

    def loss_and_grad(precision: str) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        with autocast(torch.device("cpu"), precision):
            output = model(x)
        assert output.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        logits = full_precision(ModelOutput(output, {})).output
        loss = _kd(logits, teacher)
        loss.backward()
        return loss.item(), model[0].weight.grad.clone()

    loss32, grad32 = loss_and_grad("fp32")
    loss16, grad16 = loss_and_grad("bf16")
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    cosine = F.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0)
    assert cosine > 0.99 and (grad16 - grad32).norm() / grad32.norm() < 0.1


@pytest.mark.parametrize("precision", ["bf16", pytest.param("fp16", marks=pytest.mark.slow)])
def test_a_reduced_precision_recipe_trains_on_the_cpu_with_finite_losses(tiny_suite, cli, isolated: Path,
                                                                         precision: str):
    from kdbench.tracking import Tracker

    path = tiny_suite(methods="[kd]")
    path.write_text(path.read_text().replace("student: {epochs: 1}", f"student: {{epochs: 2, precision: {precision}}}"))
    code, out, err = cli("run", path, "--device", "cpu")
    assert code == 0, err
    runs = {r.tags["kdbench.role"]: r for r in Tracker(f"sqlite:///{isolated / 'mlflow.db'}", "tiny").runs()}
    student = runs["distill"]
    assert student.status == "FINISHED" and student.params["student.recipe.precision"] == precision
    assert student.params["device"] == "cpu" and student.tags["kdbench.device"] == "cpu"
    assert torch.isfinite(torch.tensor(student.metrics["train_loss"])) and student.metrics["test_accuracy"] > 0.1
    assert "model.recipe.precision" not in runs["teacher"].params, "fp32, the default, stays out of the key"
    code, out, err = cli("leaderboard", path)
    assert f"Computed on: cpu, {precision}, nondeterministic kernels; cpu, fp32, nondeterministic kernels" in out


@NO_CUDA
@pytest.mark.parametrize(("arguments", "message"), [
    (["--device", "cuda"], "--device cuda: this machine has no CUDA device"),
    (["--gpus-per-run", "1"], "--gpus-per-run is for --executor ray"),
    (["--executor", "process", "--gpus-per-run", "0.5"], "--gpus-per-run is for --executor ray"),
    (["--executor", "ray", "--device", "cpu", "--gpus-per-run", "1"], "--gpus-per-run needs --device cuda"),
    (["--executor", "ray", "--device", "cuda", "--gpus-per-run", "-1"], "--gpus-per-run must not be negative"),
])
def test_the_cli_refuses_a_device_or_gpu_share_it_cannot_give(tiny_suite, cli, isolated: Path,
                                                               arguments: list[str], message: str):
    code, out, err = cli("run", tiny_suite(), *arguments)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kdbench: error: {message}")


def test_a_checkpoint_written_from_a_gpu_loads_on_the_cpu(tmp_path: Path):
    from kdbench.teacher_cache import TeacherCache

    model = nn.Linear(4, 3)
    registry = torch.serialization._package_registry
    tag_as_gpu = (99, lambda storage: "cuda:0", lambda storage, location: None)
    registry.insert(0, tag_as_gpu)  # every storage saved now says it lived on cuda:0, as on a GPU machine
    try:
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
    finally:
        registry.remove(tag_as_gpu)
    assert b"cuda:0" in buffer.getvalue()
    cache = TeacherCache(tmp_path)
    cache.path("k").write_bytes(buffer.getvalue())
    loaded = cache.load("k", nn.Linear(4, 3))
    assert loaded.weight.device.type == "cpu" and torch.equal(loaded.weight, model.weight)


def test_determinism_is_set_for_the_run_and_put_back_after():
    assert not torch.are_deterministic_algorithms_enabled()
    with determinism(torch.device("cpu"), on=True):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.are_deterministic_algorithms_enabled()
    with determinism(torch.device("cpu"), on=False):
        assert not torch.are_deterministic_algorithms_enabled()


def test_channels_last_places_convolutions_in_that_layout():
    from kdbench.recipe import Recipe
    from kdbench.runner import Runner

    runner = Runner.__new__(Runner)  # only its device matters to _placed
    runner.device = torch.device("cpu")
    recipe = Recipe(epochs=1, batch_size=2, lr=0.1)
    assert not runner._placed(nn.Conv2d(3, 8, 3), recipe).weight.is_contiguous(memory_format=torch.channels_last)
    placed = runner._placed(nn.Conv2d(3, 8, 3), recipe.updated({"channels_last": True}))
    assert placed.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow  # three spawned interpreters: kept out of the default run's ten minutes
def test_the_process_pool_gives_each_worker_one_gpu_in_turn():
    from kdbench.executors.process_pool import ProcessPool, _Worker

    pool = ProcessPool(3, gpus=["0", "1"])
    workers = []
    try:
        for _ in range(3):
            worker = _Worker(pool.context, pool._next_gpu())
            pool.idle.append(worker)
            workers.append(worker)
        seen = []
        for worker in workers:
            proc, deadline = Path(f"/proc/{worker.process.pid}"), time.monotonic() + 60
            while b"spawn_main" not in (proc / "cmdline").read_bytes():  # until the child has exec'd
                assert time.monotonic() < deadline, "the worker never started"
                time.sleep(0.05)
            environ = (proc / "environ").read_bytes().split(b"\0")
            seen.append(next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"CUDA_VISIBLE_DEVICES=")))
        assert seen == ["0", "1", "0"]
        assert "CUDA_VISIBLE_DEVICES" not in os.environ or os.environ["CUDA_VISIBLE_DEVICES"] != "0"
    finally:
        pool.close()


def test_gpus_per_run_reaches_rays_resource_accounting():
    ray = pytest.importorskip("ray")
    from kdbench.executors.ray_cluster import task_options

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)  # one GPU, declared
    try:
        @ray.remote(num_cpus=0)
        class Gate:
            """Holds tasks inside their reservation until the driver has read the cluster's books."""

            def __init__(self) -> None:
                self.arrived, self.opened = 0, False

            def arrive(self) -> None:
                self.arrived += 1

            def state(self) -> tuple[int, bool]:
                return self.arrived, self.opened

            def open(self) -> None:
                self.opened = True

        def held(gate) -> tuple[list[str], str]:
            ray.get(gate.arrive.remote())
            while not ray.get(gate.state.remote())[1]:
                time.sleep(0.05)
            return [str(g) for g in ray.get_gpu_ids()], os.environ.get("CUDA_VISIBLE_DEVICES", "")

        def books_while_held(gpus: float, count: int) -> tuple[float, list[tuple[list[str], str]]]:
            gate = Gate.remote()
            refs = [ray.remote(**task_options(1, gpus))(held).remote(gate) for _ in range(count)]
            deadline = time.monotonic() + 120
            while ray.get(gate.state.remote())[0] < count:  # all of them inside at once, or none
                assert time.monotonic() < deadline, f"{count} runs of {gpus} GPU never ran together"
                time.sleep(0.05)
            free = ray.available_resources().get("GPU", 0.0)
            gate.open.remote()
            return free, ray.get(refs)

        free, results = books_while_held(1.0, 1)
        assert free == 0.0 and results == [(["0"], "0")], "a whole-GPU run holds the GPU and is shown only it"
        free, results = books_while_held(0.5, 2)
        assert free == 0.0 and [r[0] for r in results] == [["0"], ["0"]], "two half-GPU runs share the one GPU"
        free, results = books_while_held(0.5, 1)
        assert free == 0.5
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_a_compiled_student_trains_to_what_the_eager_one_does(tiny_suite, cli, isolated: Path):
    from kdbench.tracking import Tracker

    path = tiny_suite(methods="[student-only]")
    eager = path.read_text()
    path.write_text(eager.replace("student: {epochs: 1}", "student: {epochs: 1, compile: true}"))
    code, out, err = cli("run", path, "--device", "cpu")
    assert code == 0, err
    path.write_text(eager)
    code, out, err = cli("run", path, "--device", "cpu")
    assert code == 0, err
    store = Tracker(f"sqlite:///{isolated / 'mlflow.db'}", "tiny")
    runs = [r for r in store.runs() if r.tags["kdbench.role"] != "teacher"]
    by_mode = {r.params.get("student.recipe.compile", "False"): r.metrics for r in runs}
    assert set(by_mode) == {"True", "False"}, "compiling is part of the run's key: two runs"
    assert by_mode["True"]["test_accuracy"] == pytest.approx(by_mode["False"]["test_accuracy"], abs=0.02)
