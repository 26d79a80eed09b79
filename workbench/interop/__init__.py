"""Hugging Face interop: load/save Gemma 2 and T5Gemma checkpoints (safetensors, no torch needed).

Public entry points: `load_hf_gemma2`, `save_hf_gemma2`, `load_hf_t5gemma`, `save_hf_t5gemma`; every
mismatch raises `CheckpointError` naming each offending key / field / file.
"""

from workbench.interop.errors import CheckpointError
from workbench.interop.hf_gemma2 import (
    gemma2_config_from_hf,
    load_hf_gemma2,
    save_hf_gemma2,
    to_hf_gemma2_config,
)
from workbench.interop.hf_t5gemma import (
    load_hf_t5gemma,
    save_hf_t5gemma,
    t5gemma_config_from_hf,
    to_hf_t5gemma_config,
)
from workbench.interop.safetensors_io import CheckpointReader, read_safetensors, write_safetensors

__all__ = [
    "CheckpointError",
    "CheckpointReader",
    "gemma2_config_from_hf",
    "load_hf_gemma2",
    "load_hf_t5gemma",
    "read_safetensors",
    "save_hf_gemma2",
    "save_hf_t5gemma",
    "t5gemma_config_from_hf",
    "to_hf_gemma2_config",
    "to_hf_t5gemma_config",
    "write_safetensors",
]
