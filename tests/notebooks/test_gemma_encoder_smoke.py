"""05_gemma_encoder.ipynb: a missing upstream model names the notebook to run first (its full smoke run is
part of tests/notebooks/test_chain_smoke.py)."""

import math
from pathlib import Path

import jax
import pytest

from workbench import adapt, config, decoder, reproduce, zoo

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
TABLES = ("tasks", "grid", "claims", "tasks_by_model", "runs", "embedding_search")
FIGURES = ("grid_heatmap", "claims", "tasks")
CLAIMS = ("bidirectional_gt_causal", "simple_pooling_ge_attention", "dropout_effect", "adapted_gt_scratch",
          "encdec_encoder_gt_decoder_encoder")


def _finite(x):
    if isinstance(x, dict):
        return bool(x) and all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _entry():
    return next(e for e in reproduce.read_manifest(NOTEBOOKS / "manifest.yaml", NOTEBOOKS)
                if e.experiment == "gemma_encoder")


def _run(root: Path):
    entry = _entry()
    key_data = reproduce.run_key(entry, "smoke", root, None)
    return reproduce.run_entry(entry, "smoke", root, NOTEBOOKS, "test", key_data, reproduce.KERNEL)


def _standins(models_dir: Path) -> None:
    """Upstream models as 01_pretrain / 02_objectives name them, at smoke size (micro, 8k vocabulary)."""
    cfg = config.decoder_preset("micro", vocab_size=8192)
    params = decoder.init(cfg, jax.random.key(0))
    zoo.save("smoke/decoder-small", cfg, params)
    zoo.save("smoke/decoder-large", cfg, decoder.init(cfg, jax.random.key(1)))
    ed_cfg = config.EncDecConfig(encoder=cfg, decoder=cfg)
    ed = adapt.decoder_to_encdec(params, ed_cfg)
    for objective in ("ul2", "prefixlm"):
        zoo.save(f"smoke/encdec-{objective}-small-s0", ed_cfg, ed)
    assert (models_dir / "smoke" / "decoder-small" / "config.json").is_file()


@pytest.mark.slow
def test_missing_upstream_model_names_the_notebook_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "empty_zoo"))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    with pytest.raises(reproduce.NotebookFailed, match=r"FileNotFoundError.*smoke/decoder-small.*01_pretrain"):
        _run(tmp_path / "results")
