"""Attention masks and positions as small pure functions.

Every mask is boolean, True where a query may attend to a key, shaped [B, L, S] (batch, query, key) or
[L, S] where no batch is involved. Shape suffixes: B batch, L queries, S keys.
"""

from __future__ import annotations

import jax.numpy as jnp


def positions_from_mask(mask_BxL: jnp.ndarray) -> jnp.ndarray:
    """RoPE positions: cumulative count of real tokens minus one (0 for leading padding)."""
    return jnp.maximum(jnp.cumsum(mask_BxL.astype(jnp.int32), axis=-1) - 1, 0)


def causal_mask(length: int, key_length: int | None = None, offset: int = 0) -> jnp.ndarray:
    """[L, S]: query i (at absolute index i + offset) sees keys 0..i+offset."""
    key_length = length if key_length is None else key_length
    q = jnp.arange(length)[:, None] + offset
    k = jnp.arange(key_length)[None, :]
    return k <= q


def bidirectional_mask(length: int, key_length: int | None = None) -> jnp.ndarray:
    """[L, S]: every query sees every key."""
    key_length = length if key_length is None else key_length
    return jnp.ones((length, key_length), dtype=bool)


def sliding_window_mask(q_idx_L: jnp.ndarray, k_idx_S: jnp.ndarray, window: int) -> jnp.ndarray:
    """[L, S] window band |q - k| <= window - 1 over absolute indices.

    Combined with a causal mask this is the usual causal window (0 <= q - k < window, as Gemma 2 and
    transformers). Combined with a bidirectional mask it is the official Flax T5Gemma rule; transformers 5.x
    keeps one more key on each side (|q - k| <= window), so encoder parity needs inputs within the window.
    """
    return jnp.abs(q_idx_L[:, None] - k_idx_S[None, :]) <= window - 1


def window_sides(window: int, rule: str = "symmetric", bidirectional: bool = False) -> tuple[int, int]:
    """(left, right): a key k is in the window of query q when 0 <= q - k < left or 0 < k - q < right.

    'symmetric' gives |q - k| <= window - 1 on both sides (the causal window, and Flax T5Gemma's encoder).
    'split' is transformers' T5Gemma 2 encoder rule for fully bidirectional attention: left (w + 1) // 2,
    right w // 2 + 1; causal and prefix attention keep the causal window w on the left.
    """
    if rule == "split" and bidirectional:
        return (window + 1) // 2, window // 2 + 1
    if rule not in ("symmetric", "split"):
        raise ValueError(f"unknown window rule {rule!r}; use symmetric | split")
    return window, window


def window_band(q_idx_L: jnp.ndarray, k_idx_S: jnp.ndarray, sides: tuple[int, int]) -> jnp.ndarray:
    """[L, S] two-sided window band over absolute indices (see `window_sides`)."""
    d = q_idx_L[:, None] - k_idx_S[None, :]
    left, right = sides
    return ((d >= 0) & (d < left)) | ((d < 0) & (-d < right))


def padding_mask(kv_mask_BxS: jnp.ndarray, length: int) -> jnp.ndarray:
    """[B, L, S]: keys that are real tokens, broadcast over L queries."""
    return jnp.broadcast_to(kv_mask_BxS.astype(bool)[:, None, :], (kv_mask_BxS.shape[0], length,
                                                                  kv_mask_BxS.shape[1]))


def prefix_lm_mask(prefix_BxL: jnp.ndarray) -> jnp.ndarray:
    """[B, L, L]: causal, plus full bidirectional attention among prefix positions (prefix_BxL True)."""
    length = prefix_BxL.shape[-1]
    causal = causal_mask(length)[None]
    prefix = prefix_BxL.astype(bool)
    return causal | (prefix[:, None, :] & prefix[:, :, None])


def self_attention_mask(mask_BxL: jnp.ndarray, kind: str = "causal",
                        prefix_BxL: jnp.ndarray | None = None) -> jnp.ndarray:
    """[B, L, L] self-attention mask for 'causal', 'bidirectional' or 'prefix' attention over padded input."""
    length = mask_BxL.shape[-1]
    if kind == "causal":
        base = causal_mask(length)[None]
    elif kind == "bidirectional":
        base = bidirectional_mask(length)[None]
    elif kind == "prefix":
        if prefix_BxL is None:
            raise ValueError("kind='prefix' needs prefix_BxL")
        base = prefix_lm_mask(prefix_BxL)
    else:
        raise ValueError(f"unknown attention kind {kind!r}; use causal | bidirectional | prefix")
    return base & padding_mask(mask_BxL, length)


def cross_attention_mask(dec_mask_BxT: jnp.ndarray, enc_mask_BxS: jnp.ndarray) -> jnp.ndarray:
    """[B, T, S]: decoder queries see every real encoder token (masked by encoder padding only)."""
    return padding_mask(enc_mask_BxS, dec_mask_BxT.shape[-1])


def shift_right(targets_BxT: jnp.ndarray, start_id: int = 2) -> jnp.ndarray:
    """Decoder inputs: targets shifted right by one with `start_id` (Gemma BOS = 2) in front."""
    start = jnp.full_like(targets_BxT[:, :1], start_id)
    return jnp.concatenate([start, targets_BxT[:, :-1]], axis=1)


def left_align(tokens_BxL: jnp.ndarray, mask_BxL: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Move each row's real tokens to the right end (left padding), keeping their order.

    Accepts right-, left- or mixed padding; generation continues every row at the same index.
    """
    mask = mask_BxL.astype(bool)
    length = mask.shape[-1]
    # Stable sort key: padding first (0), then real tokens (1) in original order.
    order = jnp.argsort(mask.astype(jnp.int32) * length + jnp.arange(length)[None], axis=-1)
    return jnp.take_along_axis(tokens_BxL, order, axis=-1), jnp.take_along_axis(mask, order, axis=-1)
