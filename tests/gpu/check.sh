#!/usr/bin/env bash
# The accelerator check (not CI): KD on a CIFAR-100-format slice in fp32 and bf16 on one GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install --quiet -e '.[test]'
python -m tests.gpu.check
