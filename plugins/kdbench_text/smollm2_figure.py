"""SmolLM2-135M-Instruct's figure on Austen: its per-token perplexity and bits per character on a
split of ``austen-smollm2`` (the task's default options; the whole split, or ``--windows N`` of its
windows evenly spaced, as the task picks its validation windows), computed by the task's own
scoring, as the teacher run's test metrics are; printed as JSON with the time it took.

    KDBENCH_DATA=... python -m kdbench_text.smollm2_figure --split test [--windows 196]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from kdbench_text.smollm2 import build_austen_smollm2, build_teacher, task_options
from kdbench_text.task import _evenly


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdbench_text.smollm2_figure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--chars-per-document", type=int, default=None, help="a smaller corpus, for a quick check")
    parser.add_argument("--windows", type=int, default=None, help="score this many evenly spaced windows of the split")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    task = build_austen_smollm2(**{**task_options(), "chars_per_document": args.chars_per_document, "val_windows": None,
                                   "transfer": None})
    whole = len(task.splits[args.split][0])
    task.splits[args.split] = _evenly(task.splits[args.split], args.windows)
    teacher = build_teacher(task)
    loaded = time.perf_counter()
    with torch.no_grad():
        metrics = task.split_metrics(teacher, args.split)
    x, y, mask = task.splits[args.split]
    print(json.dumps({"split": args.split, "windows": len(x), "of_windows": whole, "target_tokens": int(mask.sum()),
                      "target_characters": int(task.vocabulary.lengths[y[mask]].sum()),
                      "train_windows": task.num_train, "threads": torch.get_num_threads(),
                      "load_s": round(loaded - began, 1), "score_s": round(time.perf_counter() - loaded, 1),
                      **metrics}, indent=2))


if __name__ == "__main__":
    main()
