"""Smoke test: each benchmark runs in --quick mode and ends with its result line (format only, no speed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUM = r"(?:\d+\.\d+|nan)"


@pytest.mark.slow
@pytest.mark.parametrize("script, pattern", [
    ("train_throughput.py", rf"ratio_vs_torch_compile decoder={NUM} encdec={NUM}"),
    ("generate_latency.py", rf"ratio_vs_hf_generate decoder={NUM} encdec={NUM}"),
])
def test_benchmark_quick_last_line(script, pattern):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick"], capture_output=True,
                         text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(pattern, last), last
