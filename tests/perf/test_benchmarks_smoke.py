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
    ("train_throughput.py", rf"ratio_vs_torch_compile decoder={NUM} encdec={NUM}( loaded)?"),
    ("generate_latency.py", rf"ratio_vs_hf_generate decoder={NUM} encdec={NUM}( loaded)?"),
    ("profile_step.py", rf"profile step_ms={NUM} blocks=-?{NUM} head_loss_rest=-?{NUM} softcaps=-?{NUM} "
                        rf"adamw={NUM} forward={NUM}( loaded)?"),
    ("generate_flags.py", r"# after: loadavg .*"),
    ("gpu_mfu.py", rf"mfu_bf16_vs_989TFLOPs quick={NUM}"),
    ("bf16_dots.py", r"# after: loadavg .*"),
    ("seq2seq_head.py", rf"speedup_head_on_targets mini={NUM}( loaded)?"),
    ("generate_sharded.py", rf"generate_sharded_ms_per_token one={NUM} head={NUM} head\+mlp={NUM}( loaded)?"),
])
def test_benchmark_quick_last_line(script, pattern):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick"], capture_output=True,
                         text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(pattern, last), last


def test_a_loaded_run_is_marked_on_its_ratio_line(monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import common

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (6.5, 4.0, 3.0))
    assert common.loaded_before()
    assert common.ratio_line("ratio_vs_torch_compile", {"decoder": 0.71}, True) == (
        "ratio_vs_torch_compile decoder=0.71 encdec=nan loaded")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 0.5, 0.6))
    assert not common.loaded_before()
    assert common.ratio_line("ratio_vs_hf_generate", {"decoder": 3.9, "encdec": 5.1}, False) == (
        "ratio_vs_hf_generate decoder=3.90 encdec=5.10")
