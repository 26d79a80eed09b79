"""Hugging Face interop: load/save Gemma 2 and T5Gemma checkpoints (safetensors, no torch needed).

Public entry points: `load_hf_gemma2`, `save_hf_gemma2`, `load_hf_t5gemma`, `save_hf_t5gemma`; every
mismatch raises `CheckpointError` naming each offending key / field / file.
Gemma 3 text (`load_hf_gemma3`, `save_hf_gemma3`) and T5Gemma 2 text models (`load_hf_t5gemma2`,
`save_hf_t5gemma2`) likewise.
"""

from workbench.interop.errors import CheckpointError
from workbench.interop.gguf import load_gguf, load_gguf_tokenizer
from workbench.interop.hf_gemma2 import (
    gemma2_config_from_hf,
    load_hf_gemma2,
    save_hf_gemma2,
    to_hf_gemma2_config,
)
from workbench.interop.hf_gemma3 import (
    gemma3_config_from_hf,
    load_hf_gemma3,
    save_hf_gemma3,
    to_hf_gemma3_config,
)
from workbench.interop.hf_t5gemma import (
    load_hf_t5gemma,
    save_hf_t5gemma,
    t5gemma_config_from_hf,
    to_hf_t5gemma_config,
)
from workbench.interop.hf_t5gemma2 import (
    load_hf_t5gemma2,
    save_hf_t5gemma2,
    t5gemma2_config_from_hf,
    to_hf_t5gemma2_config,
)
from workbench.interop.safetensors_io import CheckpointReader, read_safetensors, write_safetensors

# transformers model_type -> (load, save): the one table that maps a stored format to its code. Which format a
# config is stored as comes from its family (`config.ARCHITECTURES`) and kind (`models.model_for`).
HF_FORMATS = {
    "gemma2": (load_hf_gemma2, save_hf_gemma2),
    "gemma3_text": (load_hf_gemma3, save_hf_gemma3),
    "t5gemma": (load_hf_t5gemma, save_hf_t5gemma),
    "t5gemma2": (load_hf_t5gemma2, save_hf_t5gemma2),
}


def save_hf(config, params, path, **kwargs) -> None:
    """Write `params` in the Hugging Face format of `config`'s family and kind (see `HF_FORMATS`)."""
    from workbench.models import model_for

    model_type = model_for(config).hf_model_type
    if model_type not in HF_FORMATS:
        raise CheckpointError(f"a {model_for(config).kind} model has no Hugging Face format here")
    HF_FORMATS[model_type][1](config, params, path, **kwargs)


def load_hf(path, **kwargs):
    """(config, params) of any supported HF checkpoint directory, by its config.json `model_type`.

    Keyword options go to the format's loader (param_dtype, dtype; `tie_embeddings` for T5Gemma).
    """
    from workbench.interop.params_map import read_config_json

    model_type = read_config_json(path).get("model_type")
    if model_type not in HF_FORMATS:
        raise CheckpointError(f"{path}/config.json: model_type {model_type!r} is not one of {sorted(HF_FORMATS)}")
    return HF_FORMATS[model_type][0](path, **kwargs)

__all__ = [
    "HF_FORMATS",
    "CheckpointError",
    "CheckpointReader",
    "gemma2_config_from_hf",
    "gemma3_config_from_hf",
    "load_gguf",
    "load_gguf_tokenizer",
    "load_hf",
    "load_hf_gemma2",
    "load_hf_gemma3",
    "load_hf_t5gemma",
    "load_hf_t5gemma2",
    "read_safetensors",
    "save_hf",
    "save_hf_gemma2",
    "save_hf_gemma3",
    "save_hf_t5gemma",
    "save_hf_t5gemma2",
    "t5gemma2_config_from_hf",
    "t5gemma_config_from_hf",
    "to_hf_gemma2_config",
    "to_hf_gemma3_config",
    "to_hf_t5gemma2_config",
    "to_hf_t5gemma_config",
    "write_safetensors",
]
