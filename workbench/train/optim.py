"""Optimizer, learning-rate schedule, weight-decay mask and the freeze partition.

The optimizer is an optax transformation *without* the learning rate: the step multiplies by
`-schedule(step)` itself, so the LR depends on the global step only (not on a partition's own count).
With freezing, params are split in two optax partitions ('train', 'frozen') with separate states, so the
frozen group's moments and bias-correction count stay untouched while it is frozen.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from workbench.train.config import TrainConfig
from workbench.tree import path_str


def schedule(cfg: TrainConfig):
    """lr(step) for update index `step` (0-based), jnp-traceable. See `TrainConfig` for the formula."""
    peak, end, W, T = cfg.learning_rate, cfg.learning_rate * cfg.end_lr_fraction, cfg.warmup_steps, cfg.steps

    def lr(step):
        step = jnp.asarray(step, jnp.float32)
        warm = peak * jnp.minimum(1.0, (step + 1.0) / max(W, 1))
        t = jnp.clip((step - W) / max(T - W - 1, 1), 0.0, 1.0)
        if cfg.schedule == "constant":
            decay = jnp.asarray(peak, jnp.float32)
        elif cfg.schedule == "linear":
            decay = peak + (end - peak) * t
        else:
            decay = end + (peak - end) * 0.5 * (1.0 + jnp.cos(math.pi * t))
        return jnp.where(step < W, warm, decay)

    return lr


def decay_mask(params: Any, decay_embeddings: bool = False) -> Any:
    """True where weight decay applies: ndim >= 2, not an embedding (unless asked), not the pooling query."""
    def f(path, x):
        p = path_str(path)
        if x.ndim < 2 or p.endswith("pooler/query"):
            return False
        return decay_embeddings or "embedding" not in p
    return jax.tree_util.tree_map_with_path(f, params)


def trainable_mask(params: Any, cfg: TrainConfig) -> Any:
    """Bool per leaf: does `cfg.trainable(path)` hold (all True without a predicate)."""
    pred = cfg.trainable or (lambda p: True)
    return jax.tree_util.tree_map_with_path(lambda path, _: bool(pred(path_str(path))), params)


def _base(cfg: TrainConfig, params: Any) -> optax.GradientTransformation:
    if cfg.optimizer == "adamw":
        core = optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    else:  # Adafactor: factored second moments + update clipping, no momentum (b1 ignored) [Shazeer & Stern]
        core = optax.chain(optax.scale_by_factored_rms(), optax.clip_by_block_rms(1.0))
    parts = [core]
    if cfg.weight_decay:
        parts.append(optax.add_decayed_weights(cfg.weight_decay, decay_mask(params, cfg.decay_embeddings)))
    return optax.chain(*parts)


def labels(params: Any, cfg: TrainConfig) -> Any:
    """'train' / 'frozen' label per leaf (only 'train' when no freeze is configured)."""
    freeze = cfg.freeze_steps > 0 and cfg.trainable is not None
    return jax.tree.map(lambda t: "train" if t or not freeze else "frozen", trainable_mask(params, cfg))


def make_optimizer(cfg: TrainConfig, params: Any) -> optax.GradientTransformation:
    """optax.multi_transform over the freeze labels; returns *unscaled* updates (multiply by -lr)."""
    lab = labels(params, cfg)
    names = sorted(set(jax.tree.leaves(lab)))
    return optax.multi_transform({n: _base(cfg, params) for n in names}, lab)


def clip_by_global_norm(grads: Any, max_norm: float | None) -> tuple[Any, jnp.ndarray]:
    """(clipped grads, pre-clip global norm)."""
    norm = optax.global_norm(grads)
    if max_norm is None:
        return grads, norm
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))
    return jax.tree.map(lambda g: g * scale.astype(g.dtype), grads), norm


def ema_update(ema: Any, params: Any, decay: float) -> Any:
    """ema <- decay * ema + (1 - decay) * params (fp32; no bias correction, starts at the initial params)."""
    return jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p.astype(e.dtype)).astype(e.dtype), ema, params)
