"""Masked pooling of token states [B, L, D] -> [B, D]; correct under left and right padding."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def first_token(x_BxLxD: jnp.ndarray, mask_BxL: jnp.ndarray) -> jnp.ndarray:
    """State of each row's first real token (not index 0, which may be padding)."""
    idx_B = jnp.argmax(mask_BxL.astype(bool), axis=-1)
    return jnp.take_along_axis(x_BxLxD, idx_B[:, None, None], axis=1)[:, 0]


def last_token(x_BxLxD: jnp.ndarray, mask_BxL: jnp.ndarray) -> jnp.ndarray:
    """State of each row's last real token (not index -1, which may be padding)."""
    L = mask_BxL.shape[-1]
    idx_B = L - 1 - jnp.argmax(mask_BxL.astype(bool)[:, ::-1], axis=-1)
    return jnp.take_along_axis(x_BxLxD, idx_B[:, None, None], axis=1)[:, 0]


def mean_pool(x_BxLxD: jnp.ndarray, mask_BxL: jnp.ndarray) -> jnp.ndarray:
    """Mean over real tokens (fp32 accumulation)."""
    m = mask_BxL.astype(jnp.float32)[..., None]
    total = jnp.sum(x_BxLxD.astype(jnp.float32) * m, axis=1)
    return (total / jnp.maximum(m.sum(axis=1), 1.0)).astype(x_BxLxD.dtype)


class AttentionPool(nn.Module):
    """Multi-head attention pooling: a learned query per head attends over K/V projections of the states."""

    num_heads: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxLxD: jnp.ndarray, mask_BxL: jnp.ndarray) -> jnp.ndarray:
        B, L, D = x_BxLxD.shape
        N, h = self.num_heads, D // self.num_heads
        query_Nxh = self.param("query", nn.initializers.normal(1.0 / h ** 0.5), (N, h))
        dense = lambda name: nn.Dense(D, use_bias=False, dtype=self.dtype, name=name)  # noqa: E731
        k_BxLxNxh = dense("key")(x_BxLxD).reshape(B, L, N, h)
        v_BxLxNxh = dense("value")(x_BxLxD).reshape(B, L, N, h)
        logits_BxNxL = jnp.einsum("nh,blnh->bnl", query_Nxh.astype(self.dtype), k_BxLxNxh,
                                  preferred_element_type=jnp.float32) / jnp.sqrt(h)
        logits_BxNxL = jnp.where(mask_BxL.astype(bool)[:, None, :], logits_BxNxL, -1e30)
        probs = jax.nn.softmax(logits_BxNxL, axis=-1).astype(self.dtype)
        out_BxD = jnp.einsum("bnl,blnh->bnh", probs, v_BxLxNxh).reshape(B, D)
        return dense("out")(out_BxD)


POOLERS = {"first": first_token, "last": last_token, "mean": mean_pool}
