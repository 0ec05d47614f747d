#!/usr/bin/env bash
# Everything a fresh machine of this kind needs to run envsynth and its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# A bare `torch` requirement would pull a multi-GB CUDA build; the CPU build of 2.13.0 lies
# on this machine's disk, so install it first when no torch is present.
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e '.[dev]'
