"""Decoder-only Gemma (2 or 3) language model as pure functions over a plain parameter dict.

params = {'embedder': {'embedding'}, 'layer_0': {...}, ..., 'final_norm': {'scale'}}; the LM head is tied.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from workbench import masks
from workbench.config import GemmaConfig
from workbench.layers import Stack
from workbench.tree import param_count_of

Params = dict[str, Any]


def _check_tokens(tokens_BxL: jnp.ndarray, mask_BxL: jnp.ndarray | None) -> jnp.ndarray:
    if tokens_BxL.ndim != 2:
        raise ValueError(f"tokens must be [batch, length], got shape {tokens_BxL.shape}")
    if mask_BxL is None:
        return jnp.ones(tokens_BxL.shape, dtype=bool)
    if mask_BxL.shape != tokens_BxL.shape:
        raise ValueError(f"mask shape {mask_BxL.shape} != tokens shape {tokens_BxL.shape}")
    return mask_BxL.astype(bool)


def init(config: GemmaConfig, rng: jax.Array) -> Params:
    """Random parameters (norm scales 0, i.e. unit gain)."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    return Stack(config).init(rng, tokens, method=_forward)["params"]


def _check_window(window: tuple[int, int] | None, length: int) -> tuple[int, int]:
    if window is None:
        return 0, length
    start, stop = window
    if not 0 <= start < stop <= length:
        raise ValueError(f"logits_window must satisfy 0 <= start < stop <= length {length}, got {window}")
    return start, stop


def _forward(stack: Stack, tokens_BxL, mask_BxL=None, attention="causal", prefix_BxL=None,
             deterministic=True, return_hidden=False, logits_window=None):
    mask_BxL = _check_tokens(tokens_BxL, mask_BxL)
    start, stop = _check_window(logits_window, tokens_BxL.shape[1])
    attn_mask = masks.self_attention_mask(mask_BxL, attention, prefix_BxL)
    hidden_BxLxD, _ = stack(stack.embed_tokens(tokens_BxL), attn_mask, masks.positions_from_mask(mask_BxL),
                            deterministic, bidirectional=attention == "bidirectional")
    return hidden_BxLxD if return_hidden else stack.logits(hidden_BxLxD[:, start:stop])


def forward(params: Params, config: GemmaConfig, tokens_BxL: jnp.ndarray, mask_BxL: jnp.ndarray | None = None,
            *, attention: str = "causal", prefix_BxL: jnp.ndarray | None = None, deterministic: bool = True,
            rng: jax.Array | None = None, return_hidden: bool = False,
            logits_window: tuple[int, int] | None = None) -> jnp.ndarray:
    """Logits [B, L, V] in fp32 (final soft-cap applied), or final hidden states with `return_hidden`.

    attention: 'causal' (LM), 'bidirectional' (encoder-only adaptation) or 'prefix' (PrefixLM with
    `prefix_BxL` marking the bidirectional prefix). `mask_BxL` marks real tokens (default: all).
    `logits_window=(start, stop)` applies the LM head to positions [start, stop) only: logits
    [B, stop - start, V], equal to the full logits sliced, without the head's FLOPs elsewhere.
    """
    rngs = {"dropout": rng} if rng is not None else None
    return Stack(config).apply({"params": params}, tokens_BxL, mask_BxL, attention, prefix_BxL, deterministic,
                               return_hidden, logits_window, method=_forward, rngs=rngs)


def param_count(config: GemmaConfig) -> int:
    """Exact parameter count from `jax.eval_shape` (no memory)."""
    return param_count_of(init, config)
