"""Meshes and logical-axis sharding (plain `jax.sharding`; no flax partitioning helpers).

Each parameter gets logical axes from its path (`logical_axes`), `rules` map logical axes to mesh axes,
`spec_for` turns both into a `PartitionSpec`. Fallback: a dimension whose size is not divisible by the
product of its mesh axes' sizes (or whose mesh axis is already used by another dimension of the same array)
is replicated along that dimension; unknown parameter names are fully replicated.
Mesh axes: 'data' (pure data parallel: params replicated), 'fsdp' (data parallel + params/opt state
sharded, ZeRO-3 style; XLA inserts the all-gathers), 'tensor' (Megatron-style heads/mlp/vocab split).
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from workbench.tree import path_str

AXES = ("data", "fsdp", "tensor")
Rules = dict[str, str | tuple[str, ...] | None]

DEFAULT_RULES: Rules = {
    "batch": ("data", "fsdp"),
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
    "head_dim": None,
    "classes": None,
}

# (path suffix, logical axes), first match wins; paths are 'a/b/c' strings.
_PATTERNS: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    ("embedder/embedding", ("vocab", "embed")),
    ("q_proj/kernel", ("embed", "heads")),
    ("k_proj/kernel", ("embed", "kv_heads")),
    ("v_proj/kernel", ("embed", "kv_heads")),
    ("o_proj/kernel", ("heads", "embed")),
    ("gate_proj/kernel", ("embed", "mlp")),
    ("up_proj/kernel", ("embed", "mlp")),
    ("down_proj/kernel", ("mlp", "embed")),
    ("pooler/query", ("heads", "head_dim")),
    ("pooler/key/kernel", ("embed", "heads")),
    ("pooler/value/kernel", ("embed", "heads")),
    ("pooler/out/kernel", ("heads", "embed")),
    ("head/kernel", ("embed", "classes")),
    ("head/bias", ("classes",)),
    ("scale", ("embed",)),
)


def _axes_for(path: str, ndim: int) -> tuple[str | None, ...]:
    for suffix, axes in _PATTERNS:
        if path.endswith(suffix) and len(axes) == ndim:
            return axes
    return (None,) * ndim


def logical_axes(params: Any) -> Any:
    """Pytree (same structure) of tuples of logical axis names (None = unnamed/replicated)."""
    return jax.tree_util.tree_map_with_path(lambda p, x: _axes_for(path_str(p), x.ndim), params)


def make_mesh(data: int = 1, fsdp: int = 1, tensor: int = 1, devices=None) -> Mesh:
    """A ('data', 'fsdp', 'tensor') mesh over `devices` (default: all); the product must equal their count."""
    devices = jax.devices() if devices is None else list(devices)
    if data * fsdp * tensor != len(devices):
        raise ValueError(f"mesh {data}x{fsdp}x{tensor} needs {data * fsdp * tensor} devices, have {len(devices)}")
    return jax.make_mesh((data, fsdp, tensor), AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def spec_for(shape: tuple[int, ...], axes: tuple[str | None, ...], mesh: Mesh, rules: Rules) -> PartitionSpec:
    """PartitionSpec for one array; non-dividing or already-used mesh axes fall back to replication."""
    used: set[str] = set()
    out: list[Any] = []
    for dim, name in zip(shape, axes, strict=True):
        mesh_axes = rules.get(name) if name is not None else None
        if mesh_axes is None:
            out.append(None)
            continue
        mesh_axes = (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)
        mesh_axes = tuple(a for a in mesh_axes if mesh.shape[a] > 1 and a not in used)
        size = math.prod(mesh.shape[a] for a in mesh_axes)
        if not mesh_axes or dim % size:
            out.append(None)
            continue
        used.update(mesh_axes)
        out.append(mesh_axes[0] if len(mesh_axes) == 1 else mesh_axes)
    return PartitionSpec(*out)


def param_shardings(params: Any, mesh: Mesh, rules: Rules | None = None) -> Any:
    """NamedSharding per param (works on arrays and ShapeDtypeStructs)."""
    rules = DEFAULT_RULES if rules is None else rules
    return jax.tree.map(lambda x, ax: NamedSharding(mesh, spec_for(x.shape, ax, mesh, rules)),
                        params, logical_axes(params), is_leaf=lambda x: isinstance(x, tuple))


def shard_params(params: Any, mesh: Mesh, rules: Rules | None = None) -> Any:
    """`device_put` every param with its logical sharding."""
    return jax.device_put(params, param_shardings(params, mesh, rules))


def like_params_shardings(tree: Any, params: Any, shardings: Any, mesh: Mesh) -> Any:
    """Shardings for a tree (e.g. optimizer state) whose leaves mirror params: a leaf whose key path ends with
    a param's path and has its shape gets that param's sharding; everything else is replicated."""
    table = {path_str(p): (x.shape, s) for (p, x), s in
             zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(shardings), strict=True)}
    replicated = NamedSharding(mesh, PartitionSpec())

    def f(path, x):
        keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        for i in range(len(keys)):
            hit = table.get("/".join(keys[i:]))
            if hit is not None and tuple(hit[0]) == tuple(x.shape):
                return hit[1]
        return replicated

    return jax.tree_util.tree_map_with_path(f, tree)


def batch_sharding(mesh: Mesh, ndim: int, rules: Rules | None = None, batch_axis: int = 0,
                   batch_size: int | None = None) -> NamedSharding:
    """Shard axis `batch_axis` over the 'batch' rule's mesh axes (replicate if it does not divide)."""
    rules = DEFAULT_RULES if rules is None else rules
    axes: list[str | None] = [None] * ndim
    axes[batch_axis] = "batch"
    shape = [1] * ndim
    shape[batch_axis] = batch_size if batch_size is not None else math.prod(mesh.shape[a] for a in AXES)
    return NamedSharding(mesh, spec_for(tuple(shape), tuple(axes), mesh, rules))


def per_device_bytes(tree: Any) -> int:
    """Bytes held by the first device over all leaves (from `addressable_shards`)."""
    dev = jax.devices()[0]
    total = 0
    for x in jax.tree.leaves(tree):
        for s in x.addressable_shards:
            if s.device == dev:
                total += s.data.nbytes
    return total
