"""Helpers every experiment notebook calls in its first cells.

    P = load_params("objectives", SCALE, OVERRIDES, seed=SEED)   # notebooks/params/objectives/<SCALE>.yaml
    ckpt = checkpoint_dir("pretrain-small", {k: P[k] for k in ("model", "steps", "lr")})

Presets are YAML mappings of lower-case keys. `OVERRIDES` may replace existing keys only (dotted keys such
as `model.num_layers` reach into nested mappings); an unknown key is an error that lists the known ones.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench.data.files import cache_dir
from workbench.results import REPO_ROOT, _jsonable

SCALES: tuple[str, ...] = ("smoke", "cpu", "gpu", "paper")
RESERVED: tuple[str, ...] = ("scale", "seed")


def params_dir() -> Path:
    """`$WORKBENCH_PARAMS` or `<repo>/notebooks/params`."""
    env = os.environ.get("WORKBENCH_PARAMS")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "notebooks" / "params"


def params_path(experiment: str, scale: str, root: str | os.PathLike | None = None) -> Path:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; known scales: {', '.join(SCALES)}")
    return (Path(root) if root is not None else params_dir()) / experiment / f"{scale}.yaml"


def read_preset(experiment: str, scale: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The raw YAML preset of `experiment` at `scale` (a mapping; reserved keys rejected)."""
    path = params_path(experiment, scale, root)
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise FileNotFoundError(f"no parameter preset {path} for experiment {experiment!r} at scale {scale!r}"
                                f"{'; presets present: ' + ', '.join(have) if have else ''}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of parameter -> value, got {type(data).__name__}")
    if bad := [k for k in RESERVED if k in data]:
        raise ValueError(f"{path} must not define {bad}: SCALE and SEED are notebook parameters")
    return data


def _known_keys(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        keys.append(prefix + str(k))
        if isinstance(v, Mapping):
            keys += _known_keys(v, f"{prefix}{k}.")
    return keys


def apply_overrides(params: dict[str, Any], overrides: Mapping[str, Any] | None, where: str = "preset"
                    ) -> dict[str, Any]:
    """A copy of `params` with `overrides` applied. Keys must exist; dotted keys (`train.steps`) or nested dicts
    (`{"train": {"steps": 5}}`) replace single entries of nested mappings, keeping their other entries."""
    out = copy.deepcopy(params)
    for key, value in (overrides or {}).items():
        _override(out, str(key), value, params, where)
    return out


def _override(out: dict[str, Any], key: str, value: Any, params: dict[str, Any], where: str) -> None:
    node, parts = out, key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"unknown parameter override {key!r} for {where}; known keys: "
                           f"{', '.join(_known_keys(params))}")
        if depth < len(parts) - 1:
            node = node[part]
    old = node[parts[-1]]
    if isinstance(old, dict) and isinstance(value, Mapping) and value:
        for k, v in value.items():  # merge into the nested mapping
            _override(out, f"{key}.{k}", v, params, where)
        return
    if old is not None and value is not None and not _compatible(old, value):
        raise TypeError(f"override {key!r}={value!r} ({type(value).__name__}) does not match the preset's "
                        f"{type(old).__name__} value {old!r} in {where}")
    node[parts[-1]] = value


def _compatible(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, int | float):
        return isinstance(new, int | float)
    if isinstance(old, list | tuple):
        return isinstance(new, list | tuple)
    return isinstance(new, type(old))


def load_params(experiment: str, scale: str, overrides: Mapping[str, Any] | None = None, *, seed: Any = None,
                root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Preset `notebooks/params/<experiment>/<scale>.yaml` with `overrides` applied, plus `scale` and `seed`.

    Raises ValueError on an unknown scale, FileNotFoundError on a missing preset, KeyError naming an unknown
    override key (and listing the known ones), TypeError when an override changes a value's type.
    """
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a dict, got {type(overrides).__name__}")
    if bad := [k for k in (overrides or {}) if k in RESERVED]:
        raise KeyError(f"override {bad[0]!r} is not allowed: set the SCALE / SEED notebook parameters instead")
    path = params_path(experiment, scale, root)
    params = apply_overrides(read_preset(experiment, scale, root), overrides, where=str(path))
    return {**params, "scale": scale, "seed": seed}


def seeds(seed: int | list[int] | tuple[int, ...]) -> list[int]:
    """`SEED` as a list (reproduce passes a list where an experiment needs error bars)."""
    return [int(s) for s in seed] if isinstance(seed, list | tuple) else [int(seed)]


def cache_key(params: Mapping[str, Any], length: int = 16) -> str:
    """Stable hex digest of `params` (canonical JSON: sorted keys, arrays as lists); equal params, equal key."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def cache_root() -> Path:
    """The data package's cache root: `$WORKBENCH_CACHE` or `<repo>/.cache/workbench` (gitignored)."""
    return cache_dir()


def checkpoint_dir(name: str, params: Mapping[str, Any]) -> Path:
    """`<cache>/checkpoints/<name>-<cache_key(params)>` (`$WORKBENCH_CHECKPOINTS` overrides the folder):
    reuse a finished checkpoint trained with `params`.

    Pass only the parameters that determine the checkpoint (model, data, steps, seed...), so that unrelated
    knobs (e.g. evaluation settings) do not force retraining. Not created; test for a completion marker.
    """
    root = os.environ.get("WORKBENCH_CHECKPOINTS")
    return (Path(root) if root else cache_root() / "checkpoints") / f"{name}-{cache_key(params)}"


def compilation_cache_dir() -> Path:
    """The persistent JAX compilation cache of notebooks and `workbench.reproduce`: `<cache>/jax-compilation`."""
    return cache_root() / "jax-compilation"


def use_compilation_cache() -> Path:
    """Turn on JAX's persistent compilation cache and return its folder: `$JAX_COMPILATION_CACHE_DIR` if set
    (`workbench.reproduce` sets it for its kernels), else `compilation_cache_dir()`. Another seed, or a
    re-run notebook, compiles the same programs again; the cache makes that a lookup."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(compilation_cache_dir()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return Path(jax.config.jax_compilation_cache_dir)
