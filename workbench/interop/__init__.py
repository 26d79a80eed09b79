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

__all__ = [
    "CheckpointError",
    "CheckpointReader",
    "gemma2_config_from_hf",
    "gemma3_config_from_hf",
    "load_gguf",
    "load_gguf_tokenizer",
    "load_hf_gemma2",
    "load_hf_gemma3",
    "load_hf_t5gemma",
    "load_hf_t5gemma2",
    "read_safetensors",
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
