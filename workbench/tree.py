"""Small helpers on parameter pytrees (plain nested dicts)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax


def count_params(tree: Any) -> int:
    """Total number of elements (works on arrays and `jax.eval_shape` structs)."""
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


def param_count_of(init_fn: Callable[[Any, jax.Array], Any], config: Any) -> int:
    """Exact parameter count of `init_fn(config, rng)` via `jax.eval_shape` (no memory)."""
    return count_params(jax.eval_shape(lambda: init_fn(config, jax.random.key(0))))


def path_str(path: tuple) -> str:
    """'decoder/layer_0/attn/q_proj/kernel' for a tree_util key path."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
