"""A small local model store: named checkpoints in the Hugging Face formats, shared between notebooks.

`save(name, config, params)` writes `<models_dir>/<name>/` as a Gemma 2 / Gemma 3 (decoder-only) or T5Gemma /
T5Gemma 2 (encoder-decoder) checkpoint that `transformers` loads, plus `workbench_config.json` with our exact config;
`load(name)` reads it back and checks that config against the checkpoint's own. Default store:
`<cache>/models` (`WORKBENCH_MODELS` overrides). Names are relative paths inside the store (`smoke/decoder-small`);
absolute names and `.`/`..` parts are refused. A user with real Gemma 2 weights can pass their directory to
`load` directly (no `workbench_config.json` needed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from workbench import pretrained
from workbench.config import EncDecConfig, GemmaConfig, config_from_dict, config_to_dict
from workbench.data import cache_dir
from workbench.interop import HF_FORMATS, load_hf, save_hf
from workbench.interop.errors import CheckpointError
from workbench.models import model_for
from workbench.results import apply_umask

CONFIG_FILE = "workbench_config.json"
# Stack fields that Hugging Face configs do not record (the loaders fill in defaults or take them as arguments).
_RUNTIME_FIELDS = frozenset({"dtype", "param_dtype", "dropout_rate"})


def models_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_MODELS", cache_dir() / "models"))


def _store_path(name: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """`<root or models_dir>/<name>` for a valid store name; anything that could leave the store raises
    ValueError."""
    text = os.fspath(name)
    parts = text.split("/")
    if (not text or text.startswith("/") or "\\" in text or "\0" in text
            or any(p in ("", ".", "..") for p in parts)):
        raise ValueError(f"invalid model name {text!r}: use a relative name inside the store such as "
                         f"'decoder-small' or 'smoke/decoder-small' (no leading '/', no '.' or '..' parts, "
                         f"no empty parts); to load a checkpoint directory pass an existing directory")
    return (models_dir() if root is None else Path(root)).joinpath(*parts)


def path(name_or_dir: str | os.PathLike) -> Path:
    p = Path(name_or_dir)
    return p if p.is_dir() and (p / "config.json").exists() else _store_path(name_or_dir)


def exists(name: str) -> bool:
    return (path(name) / "config.json").exists()


def _write_hf(config: GemmaConfig | EncDecConfig, params: dict[str, Any], target: Path) -> None:
    if not model_for(config).generative:
        raise TypeError(f"zoo stores decoder-only and encoder-decoder models, not {type(config).__name__}")
    save_hf(config, params, target)


def save(name: str, config: GemmaConfig | EncDecConfig, params: dict[str, Any], *,
         root: str | os.PathLike | None = None, files: dict[str, Any] | None = None) -> Path:
    """Write a named checkpoint in one atomic step: the HF files and `workbench_config.json` (and `files`, name ->
    JSON-able object, e.g. a provenance record) are written into a temporary directory beside the target, which
    then replaces it by rename (never a half-updated mix). `root` replaces the store (`models_dir()`)."""
    target = _store_path(name, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        staged = stage / target.name
        _write_hf(config, params, staged)
        (staged / CONFIG_FILE).write_text(json.dumps(config_to_dict(config), indent=1))
        for file_name, obj in (files or {}).items():
            if "/" in file_name or file_name in ("", ".", "..", CONFIG_FILE, "config.json"):
                raise ValueError(f"invalid extra file name {file_name!r}")
            (staged / file_name).write_text(json.dumps(obj, indent=1, sort_keys=True))
        apply_umask(staged, recursive=True)
        previous = stage / "previous"
        if target.exists():  # a directory cannot be renamed over a non-empty one: move the old one aside first
            os.replace(target, previous)
        try:
            os.replace(staged, target)
        except BaseException:
            if previous.exists() and not target.exists():
                os.replace(previous, target)
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file}: invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except OSError as e:
        raise CheckpointError(f"{file}: cannot read: {e}") from None


def _read_ours(file: Path) -> GemmaConfig | EncDecConfig:
    data = _read_json(file)
    try:
        ours = config_from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{file}: not a workbench model config: {e}") from None
    if not isinstance(ours, GemmaConfig | EncDecConfig):
        raise CheckpointError(f"{file}: holds a {type(ours).__name__}; the store keeps decoder-only and "
                              f"encoder-decoder models")
    return ours


def _differences(ours: Any, theirs: Any, prefix: str = "") -> list[str]:
    """'field: ours vs checkpoint' for every architecture field where the two configs disagree."""
    if type(ours) is not type(theirs):
        return [f"{prefix or 'model'}: {type(ours).__name__} vs {type(theirs).__name__}"]
    out = []
    for f in dataclasses.fields(ours):
        a, b = getattr(ours, f.name), getattr(theirs, f.name)
        if dataclasses.is_dataclass(a):
            out += _differences(a, b, f"{prefix}{f.name}.")
        elif f.name not in _RUNTIME_FIELDS and a != b:
            out.append(f"{prefix}{f.name}: {a!r} vs {b!r}")
    return out


def load(name_or_dir: str | os.PathLike) -> tuple[GemmaConfig | EncDecConfig, dict[str, Any]]:
    """(config, params) of a stored model, of a registered real model (`pretrained.REGISTRY`, e.g.
    'gemma3-270m': full vocabulary, dequantised from its GGUF) or of any HF Gemma 2 / Gemma 3 / T5Gemma /
    T5Gemma 2 checkpoint directory.

    `workbench_config.json`, when present, must agree with the checkpoint's `config.json` and weights on every
    architecture field (a stale file raises `CheckpointError` naming the fields); a malformed JSON file is named.
    """
    if str(name_or_dir) in pretrained.REGISTRY and not path(name_or_dir).exists():
        return pretrained.load(str(name_or_dir))
    p = path(name_or_dir)
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"no model {str(name_or_dir)!r} under {models_dir()} (run the notebook that "
                                f"trains it first, or pass a checkpoint directory)")
    hf_type = _read_json(p / "config.json").get("model_type")
    ours = _read_ours(p / CONFIG_FILE) if (p / CONFIG_FILE).exists() else None
    if hf_type not in HF_FORMATS:
        raise ValueError(f"{p}/config.json: model_type {hf_type!r} is not one of {sorted(HF_FORMATS)}")
    kwargs = {}
    if ours is not None:  # the stored dtypes (and T5Gemma's embedding tying, which HF does not record)
        stack = ours.decoder if isinstance(ours, EncDecConfig) else ours
        kwargs = {"param_dtype": stack.param_dtype, "dtype": stack.dtype}
        if hf_type == "t5gemma":
            kwargs["tie_embeddings"] = bool(ours.tie_embeddings)
    config, params = load_hf(p, **kwargs)
    if ours is not None and (diff := _differences(ours, config)):
        raise CheckpointError(f"{p / CONFIG_FILE} does not match the checkpoint's config.json and weights "
                              f"({CONFIG_FILE} vs checkpoint): {'; '.join(diff)}. The file is stale: save the "
                              f"model again, or delete {CONFIG_FILE} to load the checkpoint's own config")
    return (ours or config), params


