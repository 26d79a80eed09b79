"""Encoder-only Gemma (Gemma Encoder): bidirectional stack + pooling + task head.

params = {'encoder': <decoder-only stack params>, 'pooler': {...} (attention pooling only),
          'head': {'kernel', 'bias'}}.
Dropout: `config.encoder.dropout_rate` inside the stack (on each sub-block output before the residual add)
and `config.dropout_rate` on the pooled vector before the head.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from workbench import masks, pooling
from workbench.config import EncoderOnlyConfig
from workbench.decoder import _check_tokens
from workbench.layers import Stack

Params = dict[str, Any]


class EncoderOnly(nn.Module):
    cfg: EncoderOnlyConfig

    def setup(self) -> None:
        cfg = self.cfg
        self.encoder = Stack(cfg.encoder)
        if cfg.pooling == "attention":
            self.pooler = pooling.AttentionPool(cfg.pooling_heads, cfg.encoder.activation_dtype)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.head = nn.Dense(cfg.num_outputs, dtype=jnp.float32, kernel_init=nn.initializers.zeros_init())

    def pool(self, tokens_BxL, mask_BxL=None, deterministic=True):
        mask_BxL = _check_tokens(tokens_BxL, mask_BxL)
        kind = "causal" if self.cfg.causal else "bidirectional"
        hidden, _ = self.encoder(self.encoder.embed_tokens(tokens_BxL), masks.self_attention_mask(mask_BxL, kind),
                                 masks.positions_from_mask(mask_BxL), deterministic, bidirectional=not self.cfg.causal)
        if self.cfg.pooling == "attention":
            return self.pooler(hidden, mask_BxL)
        return pooling.POOLERS[self.cfg.pooling](hidden, mask_BxL)

    def __call__(self, tokens_BxL, mask_BxL=None, deterministic=True):
        pooled_BxD = self.pool(tokens_BxL, mask_BxL, deterministic)
        out_BxC = self.head(self.dropout(pooled_BxD.astype(jnp.float32), deterministic=deterministic))
        return out_BxC if self.cfg.task == "classification" else out_BxC[:, 0]


def init(config: EncoderOnlyConfig, rng: jax.Array) -> Params:
    """Random parameters (stack, pooler, zero-initialised head)."""
    return EncoderOnly(config).init(rng, jnp.zeros((1, 1), jnp.int32))["params"]


def forward(params: Params, config: EncoderOnlyConfig, tokens_BxL: jnp.ndarray, mask_BxL: jnp.ndarray | None = None,
            *, deterministic: bool = True, rng: jax.Array | None = None) -> jnp.ndarray:
    """Class logits [B, C] (classification) or scores [B] (regression, ranking)."""
    rngs = {"dropout": rng} if rng is not None else None
    return EncoderOnly(config).apply({"params": params}, tokens_BxL, mask_BxL, deterministic, rngs=rngs)


@functools.lru_cache(maxsize=64)
def scores_fn(config: EncoderOnlyConfig) -> Callable[[Params, dict], jnp.ndarray]:
    """`fn(params, {'tokens'})`: head outputs for [N, L] tokens, or [N, C] scores for [N, C, L] ranking candidates.
    One function object per config, so that `evaluate.predict` compiles it once per shape."""
    def fn(params: Params, batch: dict) -> jnp.ndarray:
        t = batch["tokens"]
        flat = t.reshape(-1, t.shape[-1])
        out = forward(params, config, flat, flat != 0)
        return out.reshape(*t.shape[:-1], *out.shape[1:])
    return fn


def embed(params: Params, config: EncoderOnlyConfig, tokens_BxL: jnp.ndarray,
          mask_BxL: jnp.ndarray | None = None) -> jnp.ndarray:
    """Pooled representation [B, D] (no head, no dropout)."""
    return EncoderOnly(config).apply({"params": params}, tokens_BxL, mask_BxL, True, method=EncoderOnly.pool)
