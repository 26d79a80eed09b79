"""A small local model store: named checkpoints in the Hugging Face formats, shared between notebooks.

`save(name, config, params)` writes `<models_dir>/<name>/` as a Gemma 2 (decoder-only) or T5Gemma
(encoder-decoder) checkpoint that `transformers` loads, plus `workbench_config.json` with our exact config;
`load(name)` reads it back. Default store: `<cache>/models` (`WORKBENCH_MODELS` overrides). A user with real
Gemma 2 weights can pass their directory to `load` directly (no `workbench_config.json` needed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from workbench.config import EncDecConfig, GemmaConfig, config_from_dict, config_to_dict
from workbench.data import cache_dir
from workbench.interop import load_hf_gemma2, load_hf_t5gemma, save_hf_gemma2, save_hf_t5gemma

CONFIG_FILE = "workbench_config.json"


def models_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_MODELS", cache_dir() / "models"))


def path(name_or_dir: str | os.PathLike) -> Path:
    p = Path(name_or_dir)
    return p if p.is_dir() and (p / "config.json").exists() else models_dir() / str(name_or_dir)


def exists(name: str) -> bool:
    return (path(name) / "config.json").exists()


def save(name: str, config: GemmaConfig | EncDecConfig, params: dict[str, Any]) -> Path:
    """Write a named checkpoint atomically (config last)."""
    target = models_dir() / name
    if isinstance(config, EncDecConfig):
        save_hf_t5gemma(config, params, target)
    elif isinstance(config, GemmaConfig):
        save_hf_gemma2(config, params, target)
    else:
        raise TypeError(f"zoo stores decoder-only and encoder-decoder models, not {type(config).__name__}")
    tmp = target / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config_to_dict(config), indent=1))
    os.replace(tmp, target / CONFIG_FILE)
    return target


def load(name_or_dir: str | os.PathLike) -> tuple[GemmaConfig | EncDecConfig, dict[str, Any]]:
    """(config, params) of a stored model or of any HF Gemma 2 / T5Gemma checkpoint directory."""
    p = path(name_or_dir)
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"no model {str(name_or_dir)!r} under {models_dir()} (run the notebook that "
                                f"trains it first, or pass a checkpoint directory)")
    hf_type = json.loads((p / "config.json").read_text()).get("model_type")
    ours = config_from_dict(json.loads((p / CONFIG_FILE).read_text())) if (p / CONFIG_FILE).exists() else None
    if hf_type == "t5gemma":
        tie = bool(ours.tie_embeddings) if isinstance(ours, EncDecConfig) else False
        config, params = load_hf_t5gemma(p, tie_embeddings=tie)
    elif hf_type == "gemma2":
        config, params = load_hf_gemma2(p)
    else:
        raise ValueError(f"{p}/config.json: model_type {hf_type!r} is neither 'gemma2' nor 't5gemma'")
    return (ours or config), params
