"""Orbax checkpoints of the train state, atomic save/restore, and last-k checkpoint averaging.

Layout: `<out_dir>/checkpoints/<step>/state` (orbax `CheckpointManager`, synchronous saves). Orbax writes
each step into `<step>.orbax-checkpoint-tmp-*` and renames it when complete, so a process killed mid-save
leaves only a tmp dir, which `latest_step` ignores (and the next manager cleans up). The state is
{'params', 'opt_state' (flattened to a dict keyed by leaf index), 'ema' (or absent), 'step'}; the data
position and dropout RNG are functions of (seed, step), so restoring `step` restores them.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def manager(directory: str, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False,
                                        cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=opts, item_names=("state",))


def _flat(state: dict) -> dict:
    out = dict(state)
    if "opt_state" in out:
        out["opt_state"] = {str(i): x for i, x in enumerate(jax.tree.leaves(out["opt_state"]))}
    return out


def save(mgr: ocp.CheckpointManager, step: int, state: dict) -> None:
    """Save `state` at `step` (blocks until the checkpoint is complete and renamed into place)."""
    mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_flat(state))), force=True)
    mgr.wait_until_finished()


def _abstract(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))


def restore(mgr: ocp.CheckpointManager, step: int, like: dict) -> dict:
    """Restore into the structure, dtypes and shardings of `like` (arrays or ShapeDtypeStructs)."""
    target = jax.tree.map(_abstract, _flat(like))
    got = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    out = dict(got)
    if "opt_state" in like:
        leaves = [got["opt_state"][str(i)] for i in range(len(got["opt_state"]))]
        out["opt_state"] = jax.tree.unflatten(jax.tree.structure(like["opt_state"]), leaves)
    return out


def restore_params(directory: str, step: int | None = None, key: str = "params") -> Any:
    """Params (or 'ema') of one checkpoint as numpy arrays, without knowing the structure in advance."""
    mgr = manager(directory)
    step = mgr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no complete checkpoint in {directory}")
    got = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    return jax.tree.map(np.asarray, got[key])


def average_checkpoints(directory: str, k: int, key: str = "params") -> Any:
    """Element-wise mean (fp64 accumulation, original dtype) of `key` over the last `k` saved checkpoints."""
    steps = sorted(manager(directory).all_steps())[-k:]
    if not steps:
        raise FileNotFoundError(f"no complete checkpoint in {directory}")
    trees = [restore_params(directory, s, key) for s in steps]
    return jax.tree.map(lambda *xs: (sum(x.astype(np.float64) for x in xs) / len(xs)).astype(xs[0].dtype), *trees)
