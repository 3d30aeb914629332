"""The accelerator check (not part of CI): a 2-epoch slice of the CIFAR-100 suite for one pair,
resnet32x4 → resnet8x4 with KD, in fp32 and in bf16 on the GPU, printing each run's training
images per second and the bf16/fp32 ratio — a figure measured in the same run as its baseline.

The GPU machine has no network, so the data is an archive in the canonical format of random
images written here (throughput does not depend on what the pixels show; accuracy is meaningless
and not printed). Run it as ``tests/gpu/check.sh`` on a machine with CUDA.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

IMAGES = int(os.environ.get("IMAGES", "10000"))
EPOCHS = int(os.environ.get("EPOCHS", "2"))
SUITE = """
name: gpu-check-{precision}
seeds: 1
checkpoint: final
tasks: [{{name: cifar100, options: {{val_size: 0}}}}]
pairs:
  - {{teacher: resnet32x4, student: resnet8x4}}
methods: [kd]
recipe:
  teacher: {{epochs: 1, precision: {precision}, channels_last: true}}
  student: {{epochs: {epochs}, precision: {precision}, channels_last: true}}
"""


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check")
        return 1
    import kdbench_cifar.cifar100 as cifar100

    from kdbench import DatasetFile
    from kdbench.cli import main as kdbench
    from kdbench.tracking import Tracker
    from tests.cifar_archive import tiny_members, write_archive

    work = Path(tempfile.mkdtemp(prefix="kdbench-gpu-"))
    digest = write_archive(work / "data" / "cifar100" / cifar100.ARCHIVE, tiny_members(0, IMAGES, IMAGES // 5))
    cifar100.CIFAR100_FILES = (DatasetFile(cifar100.ARCHIVE, digest, cifar100.URL),)  # this archive, not the real one
    os.environ.update(KDBENCH_DATA=str(work / "data"), KDBENCH_CACHE=str(work / "cache"))
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}; {IMAGES} random training images, "
          f"{EPOCHS} student epochs")
    rates = {}
    for precision in ("fp32", "bf16"):
        suite = work / f"{precision}.yaml"
        suite.write_text(SUITE.format(precision=precision, epochs=EPOCHS))
        started = time.perf_counter()
        code = kdbench(["run", str(suite), "--device", "cuda", "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"])
        if code != 0:
            print(f"{precision}: kdbench run exited {code}")
            return code
        runs = {r.tags["kdbench.role"]: r for r in Tracker(f"sqlite:///{work / 'mlflow.db'}",
                                                             f"gpu-check-{precision}").runs()}
        student = runs["distill"]
        seconds = student.metrics["wall_time_s"]
        rates[precision] = EPOCHS * IMAGES / seconds
        print(f"{precision}: student {seconds:.1f} s for {EPOCHS} epochs (evaluation included) = "
              f"{rates[precision]:.0f} training images/s; device {student.tags['kdbench.device']}; "
              f"suite {time.perf_counter() - started:.0f} s")
    print(f"bf16 / fp32 speed: {rates['bf16'] / rates['fp32']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
