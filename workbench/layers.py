"""Gemma 2 building blocks (Flax Linen): RMSNorm, RoPE, GQA attention with soft-capping, GeGLU, blocks.

Parameters are plain nested dicts; kernels are [in, out] (the transpose of a PyTorch Linear weight).
Shape suffixes: B batch, L query length, S key length, D width, H query heads, K kv heads, G = H // K,
h head_dim, F FFN width, V vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from workbench import masks
from workbench.config import GemmaConfig

Cache = dict[str, jnp.ndarray]
NEG_INF = -2.3819763e38  # large finite negative (as Gemma): fully masked rows stay NaN-free


def soft_cap(x: jnp.ndarray, cap: float | None) -> jnp.ndarray:
    """cap * tanh(x / cap); identity when cap is None."""
    return x if cap is None else cap * jnp.tanh(x / cap)


def apply_rope(x_BxLxNxh: jnp.ndarray, positions_BxL: jnp.ndarray, theta: float) -> jnp.ndarray:
    """Rotary embedding, half-split convention (as Gemma and transformers), computed in fp32."""
    h = x_BxLxNxh.shape[-1]
    inv_freq = 1.0 / (theta ** (jnp.arange(0, h, 2, dtype=jnp.float32) / h))
    angles_BxLxh2 = positions_BxL[..., None].astype(jnp.float32) * inv_freq
    sin, cos = jnp.sin(angles_BxLxh2)[:, :, None, :], jnp.cos(angles_BxLxh2)[:, :, None, :]
    x = x_BxLxNxh.astype(jnp.float32)
    x1, x2 = jnp.split(x, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxLxNxh.dtype)


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * (1 + scale); scale zero-centred and initialised to 0."""

    eps: float = 1e-6
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        scale = self.param("scale", nn.initializers.zeros_init(), (x.shape[-1],), self.param_dtype)
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * (1.0 + scale.astype(jnp.float32))).astype(x.dtype)


def _dense(features: int, cfg: GemmaConfig, name: str, fan_in_scale: float = 1.0) -> nn.Dense:
    return nn.Dense(features, use_bias=False, dtype=cfg.activation_dtype, param_dtype=cfg.weight_dtype,
                    kernel_init=nn.initializers.variance_scaling(fan_in_scale, "fan_in", "normal"),
                    name=name)


class Embedder(nn.Module):
    """Token embedding scaled by sqrt(D) (in the activation dtype); `decode` is the tied LM head."""

    vocab_size: int
    embed_dim: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        init = nn.initializers.normal(stddev=1.0 / math.sqrt(self.embed_dim))
        self.embedding = self.param("embedding", init, (self.vocab_size, self.embed_dim), self.param_dtype)

    def encode(self, tokens_BxL: jnp.ndarray) -> jnp.ndarray:
        x = jnp.take(self.embedding, tokens_BxL, axis=0).astype(self.dtype)
        return x * jnp.asarray(math.sqrt(self.embed_dim), self.dtype)

    def decode(self, x_BxLxD: jnp.ndarray) -> jnp.ndarray:
        return jnp.einsum("bld,vd->blv", x_BxLxD, self.embedding.astype(self.dtype),
                          preferred_element_type=jnp.float32)


class Attention(nn.Module):
    """Grouped-query attention with query pre-scaling and logit soft-capping (before masking).

    Self-attention applies RoPE; cross-attention (`cross=True`) reads K/V from `kv_input` (any width) and
    uses no RoPE. With a `cache` ({'k', 'v'} [B, S_max, K, h]), new K/V are written at `cache_index`; for
    cross-attention a cache that already holds K/V is used as is (pass `kv_input=None`).
    """

    cfg: GemmaConfig
    cross: bool = False

    @nn.compact
    def __call__(self, x_BxLxD: jnp.ndarray, mask_BxLxS: jnp.ndarray, positions_BxL: jnp.ndarray | None = None,
                 kv_input: jnp.ndarray | None = None, cache: Cache | None = None,
                 cache_index: jnp.ndarray | None = None) -> tuple[jnp.ndarray, Cache | None]:
        cfg = self.cfg
        H, K, h = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        B, L, _ = x_BxLxD.shape
        q_BxLxHxh = _dense(H * h, cfg, "q_proj")(x_BxLxD).reshape(B, L, H, h)
        k_proj, v_proj = _dense(K * h, cfg, "k_proj"), _dense(K * h, cfg, "v_proj")

        if self.cross:
            if kv_input is not None:
                S = kv_input.shape[1]
                k_BxSxKxh = k_proj(kv_input).reshape(B, S, K, h)
                v_BxSxKxh = v_proj(kv_input).reshape(B, S, K, h)
                if cache is not None:
                    cache = {"k": k_BxSxKxh, "v": v_BxSxKxh}
            else:
                if cache is None:
                    raise ValueError("cross-attention needs kv_input or a filled cache")
                if self.is_initializing():  # pragma: no cover - init always passes kv_input
                    raise ValueError("cannot initialise cross-attention from a cache")
                k_BxSxKxh, v_BxSxKxh = cache["k"], cache["v"]
        else:
            k_BxLxKxh = k_proj(x_BxLxD).reshape(B, L, K, h)
            v_BxLxKxh = v_proj(x_BxLxD).reshape(B, L, K, h)
            q_BxLxHxh = apply_rope(q_BxLxHxh, positions_BxL, cfg.rope_theta)
            k_BxLxKxh = apply_rope(k_BxLxKxh, positions_BxL, cfg.rope_theta)
            if cache is not None:
                idx = (0, cache_index, 0, 0)
                k_BxSxKxh = jax.lax.dynamic_update_slice(cache["k"], k_BxLxKxh.astype(cache["k"].dtype), idx)
                v_BxSxKxh = jax.lax.dynamic_update_slice(cache["v"], v_BxLxKxh.astype(cache["v"].dtype), idx)
                cache = {"k": k_BxSxKxh, "v": v_BxSxKxh}
            else:
                k_BxSxKxh, v_BxSxKxh = k_BxLxKxh, v_BxLxKxh

        q_BxLxHxh = q_BxLxHxh * jnp.asarray(cfg.query_pre_attn_scalar ** -0.5, q_BxLxHxh.dtype)
        q_BxLxKxGxh = q_BxLxHxh.reshape(B, L, K, H // K, h)
        logits_BxKxGxLxS = jnp.einsum("blkgh,bskh->bkgls", q_BxLxKxGxh, k_BxSxKxh.astype(q_BxLxHxh.dtype),
                                      preferred_element_type=jnp.float32)
        logits_BxKxGxLxS = soft_cap(logits_BxKxGxLxS, cfg.attn_logits_soft_cap)
        logits_BxKxGxLxS = jnp.where(mask_BxLxS[:, None, None], logits_BxKxGxLxS, NEG_INF)
        probs = jax.nn.softmax(logits_BxKxGxLxS, axis=-1).astype(cfg.activation_dtype)
        out_BxLxKxGxh = jnp.einsum("bkgls,bskh->blkgh", probs, v_BxSxKxh.astype(probs.dtype))
        out_BxLxD = _dense(x_BxLxD.shape[-1], cfg, "o_proj")(out_BxLxKxGxh.reshape(B, L, H * h))
        return out_BxLxD, cache


class FeedForward(nn.Module):
    """GeGLU: down(gelu_tanh(gate(x)) * up(x))."""

    cfg: GemmaConfig

    @nn.compact
    def __call__(self, x_BxLxD: jnp.ndarray) -> jnp.ndarray:
        cfg = self.cfg
        gate_BxLxF = _dense(cfg.hidden_dim, cfg, "gate_proj")(x_BxLxD)
        up_BxLxF = _dense(cfg.hidden_dim, cfg, "up_proj")(x_BxLxD)
        return _dense(x_BxLxD.shape[-1], cfg, "down_proj")(nn.gelu(gate_BxLxF, approximate=True) * up_BxLxF)


class Block(nn.Module):
    """Pre-norm -> self-attn -> post-norm -> residual; [cross-attn likewise]; pre-norm -> FFN -> post-norm."""

    cfg: GemmaConfig
    cross: bool = False

    @nn.compact
    def __call__(self, x_BxLxD: jnp.ndarray, mask_BxLxS: jnp.ndarray, positions_BxL: jnp.ndarray,
                 deterministic: bool = True, enc_BxSxE: jnp.ndarray | None = None,
                 cross_mask_BxLxS: jnp.ndarray | None = None, cache: dict[str, Cache] | None = None,
                 cache_index: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict[str, Cache] | None]:
        cfg = self.cfg
        norm = lambda name: RMSNorm(cfg.rms_norm_eps, cfg.weight_dtype, name=name)  # noqa: E731
        drop = nn.Dropout(cfg.dropout_rate, deterministic=deterministic)
        new_cache: dict[str, Cache] = {}

        y, c = Attention(cfg, name="attn")(norm("pre_attention_norm")(x_BxLxD), mask_BxLxS, positions_BxL,
                                           cache=None if cache is None else cache["self"], cache_index=cache_index)
        new_cache["self"] = c
        x_BxLxD = x_BxLxD + drop(norm("post_attention_norm")(y))
        if self.cross:
            y, c = Attention(cfg, cross=True, name="cross_attn")(
                norm("pre_cross_attn_norm")(x_BxLxD), cross_mask_BxLxS, kv_input=enc_BxSxE,
                cache=None if cache is None else cache["cross"])
            new_cache["cross"] = c
            x_BxLxD = x_BxLxD + drop(norm("post_cross_attn_norm")(y))
        y = FeedForward(cfg, name="mlp")(norm("pre_ffw_norm")(x_BxLxD))
        x_BxLxD = x_BxLxD + drop(norm("post_ffw_norm")(y))
        return x_BxLxD, (new_cache if cache is not None else None)


class Stack(nn.Module):
    """Embedding (optional) -> blocks with alternating local/global attention -> final norm.

    `mask_BxLxS` is the base self-attention mask (causal / bidirectional / prefix, with padding); local
    layers additionally apply the sliding window over absolute indices (`q_offset` shifts the queries when
    decoding with a cache).
    """

    cfg: GemmaConfig
    cross: bool = False
    embed: bool = True

    def setup(self) -> None:
        cfg = self.cfg
        if self.embed:
            self.embedder = Embedder(cfg.vocab_size, cfg.embed_dim, cfg.activation_dtype, cfg.weight_dtype)
        self.layers = [Block(cfg, cross=self.cross, name=f"layer_{i}") for i in range(cfg.num_layers)]
        self.final_norm = RMSNorm(cfg.rms_norm_eps, cfg.weight_dtype)

    def __call__(self, x_BxLxD: jnp.ndarray, mask_BxLxS: jnp.ndarray, positions_BxL: jnp.ndarray,
                 deterministic: bool = True, enc_BxSxE: jnp.ndarray | None = None,
                 cross_mask_BxLxS: jnp.ndarray | None = None, cache: list | None = None,
                 cache_index: jnp.ndarray | int = 0) -> tuple[jnp.ndarray, list | None]:
        cfg = self.cfg
        L, S = mask_BxLxS.shape[-2:]
        local_mask = mask_BxLxS
        if cfg.sliding_window is not None and "local" in cfg.attention_types:
            band = masks.sliding_window_mask(jnp.arange(L) + cache_index, jnp.arange(S), cfg.sliding_window)
            local_mask = mask_BxLxS & band[None]
        new_cache = []
        for i, (layer, kind) in enumerate(zip(self.layers, cfg.attention_types, strict=True)):
            x_BxLxD, c = layer(x_BxLxD, local_mask if kind == "local" else mask_BxLxS, positions_BxL,
                               deterministic, enc_BxSxE, cross_mask_BxLxS,
                               None if cache is None else cache[i], cache_index)
            new_cache.append(c)
        return self.final_norm(x_BxLxD), (new_cache if cache is not None else None)

    def embed_tokens(self, tokens_BxL: jnp.ndarray) -> jnp.ndarray:
        return self.embedder.encode(tokens_BxL)

    def logits(self, x_BxLxD: jnp.ndarray) -> jnp.ndarray:
        return soft_cap(self.embedder.decode(x_BxLxD), self.cfg.final_logit_soft_cap)
