"""Shared machinery: parameter-path <-> HF-key mapping, validated loading and saving of parameter trees.

Our trees are plain nested dicts; a leaf path is a tuple like ('layer_3', 'attn', 'q_proj', 'kernel').
Kernels are [in, out], the transpose of a PyTorch Linear weight; norm scales and embeddings copy 1:1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from workbench.interop.errors import CheckpointError
from workbench.interop.safetensors_io import CheckpointReader

Path_ = tuple[str, ...]
ToHF = Callable[[Path_], tuple[str, bool]]  # our path -> (HF key, transpose?)
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def flatten(tree: Mapping[str, Any], prefix: Path_ = ()) -> dict[Path_, Any]:
    out: dict[Path_, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def unflatten(flat: Mapping[Path_, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, v in flat.items():
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return tree


def stack_to_hf(path: Path_, prefix: str, norms: Mapping[str, str]) -> tuple[str, bool]:
    """HF key of one leaf of a Gemma stack ('embedder', 'layer_i', 'final_norm') under HF `prefix`."""
    if path == ("embedder", "embedding"):
        return f"{prefix}embed_tokens.weight", False
    if path == ("final_norm", "scale"):
        return f"{prefix}norm.weight", False
    m = re.fullmatch(r"layer_(\d+)", path[0])
    if m and len(path) == 3 and path[1] in norms and path[2] == "scale":
        return f"{prefix}layers.{m[1]}.{norms[path[1]]}.weight", False
    if m and len(path) == 4 and path[1] in ("attn", "cross_attn") and path[2] in ("q_norm", "k_norm") \
            and path[3] == "scale":  # QK-norm (Gemma 3): [head_dim], copied 1:1
        module = "self_attn" if path[1] == "attn" else "cross_attn"
        return f"{prefix}layers.{m[1]}.{module}.{path[2]}.weight", False
    if m and len(path) == 4 and path[3] == "kernel":
        module = {"attn": "self_attn", "cross_attn": "cross_attn", "mlp": "mlp"}.get(path[1])
        projs = ("gate_proj", "up_proj", "down_proj") if path[1] == "mlp" else ("q_proj", "k_proj", "v_proj",
                                                                                 "o_proj")
        if module and path[2] in projs:
            return f"{prefix}layers.{m[1]}.{module}.{path[2]}.weight", True
    raise CheckpointError(f"parameter {'/'.join(path)} has no Hugging Face counterpart")


def expected_shapes(init_fn: Callable[[], Any]) -> dict[Path_, tuple[int, ...]]:
    """Leaf shapes of the parameter tree `init_fn` would build (via jax.eval_shape: no memory)."""
    return {p: tuple(s.shape) for p, s in flatten(jax.eval_shape(init_fn)).items()}


def read_config_json(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read the model config: {e}") from e
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return cfg


def load_params(directory: str | Path, shapes: Mapping[Path_, tuple[int, ...]], to_hf: ToHF,
                tied: Mapping[str, str], param_dtype: str,
                ignored: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Read, validate and convert every tensor; raise one CheckpointError naming all offending keys.

    `tied` maps optional HF keys (e.g. 'lm_head.weight') to the key they must equal when present.
    `ignored` marks HF keys that are neither read nor reported as unexpected (the caller checks them).
    """
    if param_dtype not in _DTYPES:
        raise CheckpointError(f"param_dtype must be one of {sorted(_DTYPES)}, got {param_dtype!r}")
    reader = CheckpointReader(directory)
    want = {to_hf(p): p for p in shapes}  # (key, transpose) -> path
    by_key = {key: (path, tr) for (key, tr), path in want.items()}
    present = set(reader.keys())
    missing = sorted(set(by_key) - present)
    unexpected = sorted(k for k in present - set(by_key) - set(tied) if not (ignored and ignored(k)))
    wrong = []
    for key in sorted(present & set(by_key)):
        path, tr = by_key[key]
        exp = shapes[path][::-1] if tr else shapes[path]
        if reader.shape(key) != exp:
            wrong.append(f"{key}: expected {list(exp)}, found {list(reader.shape(key))}")
    for key, target in tied.items():
        if key in present and target in present and reader.shape(key) != reader.shape(target):
            wrong.append(f"{key}: must equal {target} {list(reader.shape(target))}, found {list(reader.shape(key))}")
    if not (missing or unexpected or wrong):
        for key, target in tied.items():
            if key in present and not np.array_equal(reader.read(key), reader.read(target)):
                wrong.append(f"{key}: must equal {target} (tied), but the values differ")
    _raise_if(f"checkpoint {directory}", missing, unexpected, wrong)
    dtype = _DTYPES[param_dtype]
    flat = {}
    for key, (path, tr) in by_key.items():
        arr = reader.read(key)
        flat[path] = jnp.asarray(np.ascontiguousarray(arr.T) if tr else arr, dtype=dtype)
    return unflatten(flat)


def params_to_tensors(params: Mapping[str, Any], shapes: Mapping[Path_, tuple[int, ...]], to_hf: ToHF,
                      save_dtype: str | None) -> dict[str, np.ndarray]:
    """Validate a parameter tree against the config's shapes and convert it to HF-named numpy tensors."""
    if save_dtype is not None and save_dtype not in _DTYPES:
        raise CheckpointError(f"dtype must be one of {sorted(_DTYPES)}, got {save_dtype!r}")
    flat = flatten(params)
    missing = sorted("/".join(p) for p in set(shapes) - set(flat))
    unexpected = sorted("/".join(p) for p in set(flat) - set(shapes))
    wrong = [f"{'/'.join(p)}: expected {list(shapes[p])}, found {list(np.shape(flat[p]))}"
             for p in sorted(set(flat) & set(shapes)) if tuple(np.shape(flat[p])) != shapes[p]]
    _raise_if("parameters", missing, unexpected, wrong)
    out = {}
    for path in sorted(shapes):
        key, tr = to_hf(path)
        arr = np.asarray(flat[path])
        if save_dtype is not None:
            arr = arr.astype(_DTYPES[save_dtype])
        out[key] = np.ascontiguousarray(arr.T) if tr else arr
    return out


def _raise_if(what: str, missing: list[str], unexpected: list[str], wrong: list[str]) -> None:
    parts = []
    if missing:
        parts.append("missing keys: " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected keys: " + ", ".join(unexpected))
    if wrong:
        parts.append("wrong shapes/values:\n    " + "\n    ".join(wrong))
    if parts:
        raise CheckpointError(f"{what} does not match the model config:\n  " + "\n  ".join(parts))


def dtype_name(params: Mapping[str, Any]) -> str:
    """'bfloat16' if every leaf is bf16, else 'float32' (the config.json `dtype` field)."""
    leaves = jax.tree_util.tree_leaves(params)
    return "bfloat16" if leaves and all(np.dtype(x.dtype) == jnp.bfloat16 for x in leaves) else "float32"
