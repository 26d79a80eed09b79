"""Committed stand-in decoders: a pretraining run exported once with its provenance, loaded back checked.

At cpu scale the stand-ins need more pretraining than one batch can afford (`results/pretrain/floors.md`: they
must clear the bigram floor). `01_pretrain` therefore runs once at length (`make standins`) and `export`s both
models to `results/standins/<role>/` (Hugging Face files + `provenance.json`: the training parameters, commit,
date, machine, tokens seen); the cpu preset then `load`s them, and `load` refuses a checkpoint trained with
parameters other than the preset's, naming every difference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench import results, zoo
from workbench.config import EncDecConfig, GemmaConfig

PROVENANCE = "provenance.json"
TRAINING_KEYS = ("max_docs", "seq_len", "batch", "train")  # preset keys that determine a stand-in's weights


def _plain(obj: Any) -> Any:
    """`obj` as plain JSON types (tuples as lists, numpy scalars as numbers), so records compare equal."""
    return json.loads(results.to_json(obj))


def root() -> Path:
    """`<results>/standins`: committed with the results, outside every experiment's own folder."""
    return results.results_dir() / "standins"


def training_params(params: Mapping[str, Any], role: str, seed: int) -> dict[str, Any]:
    """What determines the weights of stand-in `role` under preset `params` (its model preset, data, schedule,
    seed): the key of its training checkpoints and the record that `load` checks."""
    return _plain({"model": params[role], "seed": int(seed), **{k: params[k] for k in TRAINING_KEYS}})


def resolve(checkpoint: str | os.PathLike) -> Path:
    """A preset's `checkpoints` entry as a directory: relative entries live under `<results>/`."""
    p = Path(checkpoint).expanduser()
    return p if p.is_absolute() else results.results_dir() / p


def export(role: str, config: GemmaConfig | EncDecConfig, params: Any, preset: Mapping[str, Any], seed: int,
           info: Mapping[str, Any]) -> Path:
    """Write stand-in `role` atomically to `root()/<role>` with its provenance (training parameters, `info`,
    commit, date, machine)."""
    record = {"training": training_params(preset, role, seed), **_plain(dict(info)),
              "provenance": results.provenance(preset, preset.get("scale"), seed)}
    return zoo.save(role, config, params, root=root(), files={PROVENANCE: record})


def load(checkpoint: str | os.PathLike, preset: Mapping[str, Any], role: str, seed: int
         ) -> tuple[GemmaConfig | EncDecConfig, Any, dict[str, Any] | None]:
    """(config, params, provenance) of a preset's checkpoint. A directory with `provenance.json` must have been
    trained with this preset's `training_params` (ValueError naming each difference and the remedy); a plain HF
    directory (real weights) has no provenance (None)."""
    d = resolve(checkpoint)
    if not (d / "config.json").exists():
        raise FileNotFoundError(f"stand-in {role!r}: no checkpoint at {d} (produce it with `make standins`, or set "
                                f"checkpoints.{role} to null to train it here)")
    record = results.read_json(d / PROVENANCE) if (d / PROVENANCE).exists() else None
    if record is not None:
        want, have = training_params(preset, role, seed), record.get("training", {})
        if diff := sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k)):
            details = "; ".join(f"{k}: checkpoint {have.get(k)!r} vs preset {want.get(k)!r}" for k in diff)
            raise ValueError(f"stand-in {role!r} at {d} was trained with other parameters ({details}): re-run "
                             f"`make standins` or restore the preset that produced it")
    config, params = zoo.load(d)
    return config, params, record
