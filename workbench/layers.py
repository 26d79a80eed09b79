"""Gemma building blocks (Flax Linen): RMSNorm, RoPE, GQA attention (soft-cap, QK-norm, merged), GeGLU, blocks.

One block serves every family: Gemma 2 and Gemma 3 differ only in `GemmaConfig` options (see
`config.ARCHITECTURES`).

Parameters are plain nested dicts; kernels are [in, out] (the transpose of a PyTorch Linear weight).
Shape suffixes: B batch, L query length, S key length, D width, H query heads, K kv heads, G = H // K,
h head_dim, F FFN width, V vocabulary.
"""

from __future__ import annotations

import functools
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


def apply_rope(x_BxLxNxh: jnp.ndarray, positions_BxL: jnp.ndarray, theta: float,
               scale: float = 1.0) -> jnp.ndarray:
    """Rotary embedding, half-split convention (as Gemma and transformers), computed in fp32.

    `scale` > 1 is linear RoPE scaling (frequencies divided by `scale`, as Gemma 3's global layers).
    """
    h = x_BxLxNxh.shape[-1]
    inv_freq = 1.0 / (theta ** (jnp.arange(0, h, 2, dtype=jnp.float32) / h))
    if scale != 1.0:
        inv_freq = inv_freq / scale
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


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def matmul(x_NxI: jnp.ndarray, w: jnp.ndarray, w_is_OxI: bool = False, out_dtype: Any = None) -> jnp.ndarray:
    """x @ w over the last axis of x (any leading axes); w is [I, O], or [O, I] with `w_is_OxI` (a tied head);
    `out_dtype` is the dots' `preferred_element_type` (forward and backward, as autodiff of the einsum would).

    The backward is written for XLA's CPU dots, which want the left operand's contracting axis minor: JAX's own
    transpose rule computes a weight's gradient as dot(g, x) contracted over the token axes, so every backward
    first copied the whole output gradient [tokens, O] into [O, tokens] (for the LM head, [tokens, V]). Here the
    smaller of x and g is the one laid out that way (dot(x, g) -> [I, O] when I <= O, else dot(g, x) -> [O, I])
    and only the small weight gradient is transposed. Same values as autodiff up to summation order.
    """
    return jnp.einsum("...i,oi->...o" if w_is_OxI else "...i,io->...o", x_NxI, w, preferred_element_type=out_dtype)


def _matmul_fwd(x, w, w_is_OxI, out_dtype):
    return matmul(x, w, w_is_OxI, out_dtype), (x, w)


def _matmul_bwd(w_is_OxI, out_dtype, res, g):
    x, w = res
    O, I = w.shape if w_is_OxI else w.shape[::-1]
    dx = jnp.einsum("...o,oi->...i" if w_is_OxI else "...o,io->...i", g, w, preferred_element_type=out_dtype)
    x2, g2 = x.reshape(-1, I), g.reshape(-1, O)
    contract = (((0,), (0,)), ((), ()))
    if I <= O:
        dw_IxO = jax.lax.dot_general(x2, g2, contract, preferred_element_type=out_dtype)
        dw = dw_IxO.T if w_is_OxI else dw_IxO
    else:
        dw_OxI = jax.lax.dot_general(g2, x2, contract, preferred_element_type=out_dtype)
        dw = dw_OxI if w_is_OxI else dw_OxI.T
    return dx.astype(x.dtype), dw.astype(w.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


_HEADS = ((0, 1), (0, 1))  # batch and kv-head axes of the head-major attention operands


def _hdot(a: jnp.ndarray, b: jnp.ndarray, ca: int, cb: int, out_dtype: Any = None) -> jnp.ndarray:
    """Batched dot over the leading [B, K] axes, contracting axis `ca` of a with axis `cb` of b."""
    return jax.lax.dot_general(a, b, (((ca,), (cb,)), _HEADS), preferred_element_type=out_dtype)


def _where_mask(mask_BxLxS: jnp.ndarray, x_BxKxMxS: jnp.ndarray, other: float) -> jnp.ndarray:
    """where(mask, x, other) with the [B, L, S] mask broadcast over the kv heads and the G query heads of each
    (M = G * L rows, a free reshape), so that the mask is never materialised G times."""
    B, K, M, S = x_BxKxMxS.shape
    L = mask_BxLxS.shape[1]
    x = x_BxKxMxS.reshape(B, K, M // L, L, S)
    return jnp.where(mask_BxLxS[:, None, None], x, other).reshape(B, K, M, S)


def _attention_fwd_parts(q, k, v, mask, cap, probs_dtype):
    logits = _hdot(q, k.astype(q.dtype), 3, 3, jnp.float32)
    capped = soft_cap(logits, cap)
    probs32 = jax.nn.softmax(_where_mask(mask, capped, NEG_INF), axis=-1)
    return _hdot(probs32.astype(probs_dtype), v.astype(probs_dtype), 3, 2), capped, probs32


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _attention_core(q_BxKxMxh, k_BxKxSxh, v_BxKxSxh, mask_BxLxS, cap, probs_dtype):
    """softmax(where(mask, soft_cap(q k^T), -inf)) v over head-major operands (M = G * L query rows per kv head).

    The backward is written for XLA's CPU dots, as `matmul`'s: autodiff would contract the [M, S] probabilities
    and score gradients over M, so XLA copied each of those (the largest tensors of the step) into [S, M]. Here
    the small operand (q or the output gradient, [M, h]) is the one transposed: dk^T = q^T ds, dv^T = g^T p.
    Same values as autodiff up to summation order; masked scores get exactly zero gradient (as `where`).
    """
    return _attention_fwd_parts(q_BxKxMxh, k_BxKxSxh, v_BxKxSxh, mask_BxLxS, cap, probs_dtype)[0]


def _attention_core_fwd(q, k, v, mask, cap, probs_dtype):
    out, capped, probs32 = _attention_fwd_parts(q, k, v, mask, cap, probs_dtype)
    return out, (q, k, v, mask, None if cap is None else capped, probs32)


def _attention_core_bwd(cap, probs_dtype, res, g_BxKxMxh):
    q, k, v, mask, capped, probs32 = res
    g = g_BxKxMxh.astype(probs_dtype)
    dv_BxKxhxS = _hdot(jnp.swapaxes(g, 2, 3), probs32.astype(probs_dtype), 3, 2, jnp.float32)
    dprobs = _hdot(g, v.astype(probs_dtype), 3, 3, jnp.float32)
    dlogits = probs32 * (dprobs - jnp.sum(dprobs * probs32, axis=-1, keepdims=True))
    if cap is not None:
        t = capped / cap
        dlogits = dlogits * (1.0 - t * t)
    dlogits = _where_mask(mask, dlogits, 0.0).astype(q.dtype)
    dq = _hdot(dlogits, k.astype(q.dtype), 3, 2, jnp.float32)
    dk_BxKxhxS = _hdot(jnp.swapaxes(q, 2, 3), dlogits, 3, 2, jnp.float32)
    return (dq.astype(q.dtype), jnp.swapaxes(dk_BxKxhxS, 2, 3).astype(k.dtype),
            jnp.swapaxes(dv_BxKxhxS, 2, 3).astype(v.dtype), None)


_attention_core.defvjp(_attention_core_fwd, _attention_core_bwd)


def attend(q_BxLxKxGxh: jnp.ndarray, k_BxSxKxh: jnp.ndarray, v_BxSxKxh: jnp.ndarray, mask_BxLxS: jnp.ndarray,
           cap: float | None, probs_dtype: Any = jnp.float32) -> jnp.ndarray:
    """Grouped-query attention of pre-scaled queries: fp32 scores, soft-cap, mask, fp32 softmax, probabilities
    in `probs_dtype` times v. Returns [B, L, K, G, h].

    Computed head-major ([B, K, G * L, h] queries against [B, K, S, h] keys), so that the dots see their
    contracting axes where XLA's CPU dots want them and the [B, K, G * L, S] scores are never transposed (the
    einsum form made XLA transpose the scores and their gradients: 2x slower here, fwd + bwd). The mask
    broadcasts over B and L as usual.
    """
    B, L, K, G, h = q_BxLxKxGxh.shape
    S = k_BxSxKxh.shape[1]
    q = jnp.transpose(q_BxLxKxGxh, (0, 2, 3, 1, 4)).reshape(B, K, G * L, h)
    k, v = jnp.transpose(k_BxSxKxh, (0, 2, 1, 3)), jnp.transpose(v_BxSxKxh, (0, 2, 1, 3))
    mask = jnp.broadcast_to(mask_BxLxS, (mask_BxLxS.shape[0], L, S))
    out_BxKxMxh = _attention_core(q, k, v, mask, cap, jnp.dtype(probs_dtype))
    return jnp.transpose(out_BxKxMxh.reshape(B, K, G, L, h), (0, 3, 1, 2, 4))


class Dense(nn.Module):
    """Bias-free linear layer ('kernel' [in, out], as `nn.Dense`), computed with `matmul`."""

    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), self.param_dtype)
        return matmul(x.astype(self.dtype), kernel.astype(self.dtype))


def _dense(features: int, cfg: GemmaConfig, name: str, fan_in_scale: float = 1.0) -> Dense:
    return Dense(features, dtype=cfg.activation_dtype, param_dtype=cfg.weight_dtype,
                 kernel_init=nn.initializers.variance_scaling(fan_in_scale, "fan_in", "normal"), name=name)


class Embedder(nn.Module):
    """Token embedding scaled by sqrt(D) (in the activation dtype); `decode` is the tied LM head.

    With `eoi_token_id` (T5Gemma 2) that token's input embedding is the learned, unscaled `eoi_embedding`.
    """

    vocab_size: int
    embed_dim: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    eoi_token_id: int | None = None

    def setup(self) -> None:
        init = nn.initializers.normal(stddev=1.0 / math.sqrt(self.embed_dim))
        self.embedding = self.param("embedding", init, (self.vocab_size, self.embed_dim), self.param_dtype)
        if self.eoi_token_id is not None:
            self.eoi_embedding = self.param("eoi_embedding", nn.initializers.zeros_init(), (self.embed_dim,),
                                            self.param_dtype)

    def encode(self, tokens_BxL: jnp.ndarray) -> jnp.ndarray:
        x = jnp.take(self.embedding, tokens_BxL, axis=0).astype(self.dtype)
        x = x * jnp.asarray(math.sqrt(self.embed_dim), self.dtype)
        if self.eoi_token_id is not None:
            x = jnp.where((tokens_BxL == self.eoi_token_id)[..., None], self.eoi_embedding.astype(self.dtype), x)
        return x

    def decode(self, x_BxLxD: jnp.ndarray) -> jnp.ndarray:
        return matmul(x_BxLxD, self.embedding.astype(self.dtype), True, jnp.float32)


class Attention(nn.Module):
    """Grouped-query attention with query pre-scaling, optional QK-norm and logit soft-capping (before masking).

    mode 'self': RoPE on q and k (base and scale of this layer's kind). mode 'cross': K/V from `kv_input` (any
    width), no RoPE. mode 'merged' (T5Gemma 2 decoder): one softmax over [self keys; encoder keys], the
    encoder part projected by the same k/v kernels (or by `cross_k_proj` / `cross_v_proj` with `own_cross_kv`,
    for a wider encoder), QK-norm on both key parts, RoPE on the self part only; the mask is
    [self mask | cross mask]. Caches are {'k', 'v'} [B, S_max, K, h]: self K/V are written at
    `cache_index`; a cross cache that already holds K/V is used as is (pass `kv_input=None`). In 'merged'
    mode `cache` is a pair (self cache, cross cache).
    """

    cfg: GemmaConfig
    mode: str = "self"
    kind: str = "global"
    own_cross_kv: bool = False

    def _cross_kv(self, k_proj, v_proj, k_norm, kv_input, cache, B: int):
        cfg = self.cfg
        K, h = cfg.num_kv_heads, cfg.head_dim
        if kv_input is None:
            if cache is None:
                raise ValueError("cross-attention needs kv_input or a filled cache")
            return cache["k"], cache["v"], cache
        S = kv_input.shape[1]
        k_BxSxKxh = k_norm(k_proj(kv_input).reshape(B, S, K, h))
        v_BxSxKxh = v_proj(kv_input).reshape(B, S, K, h)
        return k_BxSxKxh, v_BxSxKxh, (None if cache is None else {"k": k_BxSxKxh, "v": v_BxSxKxh})

    @nn.compact
    def __call__(self, x_BxLxD: jnp.ndarray, mask_BxLxS: jnp.ndarray, positions_BxL: jnp.ndarray | None = None,
                 kv_input: jnp.ndarray | None = None, cache: Any = None, cache_index: jnp.ndarray | None = None,
                 cross_mask_BxLxS: jnp.ndarray | None = None) -> tuple[jnp.ndarray, Any]:
        cfg = self.cfg
        H, K, h = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        B, L, _ = x_BxLxD.shape
        if cfg.qk_norm:
            q_norm = RMSNorm(cfg.rms_norm_eps, cfg.weight_dtype, name="q_norm")
            k_norm = RMSNorm(cfg.rms_norm_eps, cfg.weight_dtype, name="k_norm")
        else:
            q_norm = k_norm = lambda t: t  # noqa: E731
        q_BxLxHxh = q_norm(_dense(H * h, cfg, "q_proj")(x_BxLxD).reshape(B, L, H, h))
        k_proj, v_proj = _dense(K * h, cfg, "k_proj"), _dense(K * h, cfg, "v_proj")

        if self.mode == "cross":
            k_BxSxKxh, v_BxSxKxh, cache = self._cross_kv(k_proj, v_proj, k_norm, kv_input, cache, B)
        else:
            self_cache, cross_cache = cache if self.mode == "merged" and cache is not None else (cache, None)
            theta, scale = cfg.rope_for(self.kind)
            k_BxLxKxh = apply_rope(k_norm(k_proj(x_BxLxD).reshape(B, L, K, h)), positions_BxL, theta, scale)
            v_BxLxKxh = v_proj(x_BxLxD).reshape(B, L, K, h)
            q_BxLxHxh = apply_rope(q_BxLxHxh, positions_BxL, theta, scale)
            if self_cache is not None:
                idx = (0, cache_index, 0, 0)
                k_BxSxKxh = jax.lax.dynamic_update_slice(self_cache["k"], k_BxLxKxh.astype(self_cache["k"].dtype), idx)
                v_BxSxKxh = jax.lax.dynamic_update_slice(self_cache["v"], v_BxLxKxh.astype(self_cache["v"].dtype), idx)
                self_cache = {"k": k_BxSxKxh, "v": v_BxSxKxh}
            else:
                k_BxSxKxh, v_BxSxKxh = k_BxLxKxh, v_BxLxKxh
            cache = self_cache
            if self.mode == "merged":
                if self.own_cross_kv:
                    ck_proj, cv_proj = _dense(K * h, cfg, "cross_k_proj"), _dense(K * h, cfg, "cross_v_proj")
                else:
                    ck_proj, cv_proj = k_proj, v_proj
                ck, cv, cross_cache = self._cross_kv(ck_proj, cv_proj, k_norm, kv_input, cross_cache, B)
                k_BxSxKxh = jnp.concatenate([k_BxSxKxh, ck.astype(k_BxSxKxh.dtype)], axis=1)
                v_BxSxKxh = jnp.concatenate([v_BxSxKxh, cv.astype(v_BxSxKxh.dtype)], axis=1)
                mask_BxLxS = jnp.concatenate([mask_BxLxS, cross_mask_BxLxS], axis=-1)
                cache = None if self_cache is None else (self_cache, cross_cache)

        q_BxLxHxh = q_BxLxHxh * jnp.asarray(cfg.query_pre_attn_scalar ** -0.5, q_BxLxHxh.dtype)
        out_BxLxKxGxh = attend(q_BxLxHxh.reshape(B, L, K, H // K, h), k_BxSxKxh, v_BxSxKxh, mask_BxLxS,
                               cfg.attn_logits_soft_cap, cfg.activation_dtype)
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


CrossMode = str  # 'none' | 'separate' (T5Gemma: cross-attention after self-attention) | 'merged' (T5Gemma 2)


class Block(nn.Module):
    """Pre-norm -> self-attn -> post-norm -> residual; [cross-attn likewise]; pre-norm -> FFN -> post-norm.

    `kind` ('local' / 'global') picks the layer's RoPE base and scale; with `cross='merged'` the self-attention
    also attends to the encoder outputs (one attention, no separate cross-attention sub-block).
    """

    cfg: GemmaConfig
    cross: CrossMode = "none"
    kind: str = "global"
    own_cross_kv: bool = False

    @nn.compact
    def __call__(self, x_BxLxD: jnp.ndarray, mask_BxLxS: jnp.ndarray, positions_BxL: jnp.ndarray,
                 deterministic: bool = True, enc_BxSxE: jnp.ndarray | None = None,
                 cross_mask_BxLxS: jnp.ndarray | None = None, cache: dict[str, Cache] | None = None,
                 cache_index: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict[str, Cache] | None]:
        cfg = self.cfg
        norm = lambda name: RMSNorm(cfg.rms_norm_eps, cfg.weight_dtype, name=name)  # noqa: E731
        drop = nn.Dropout(cfg.dropout_rate, deterministic=deterministic)
        new_cache: dict[str, Cache] = {}

        h_BxLxD = norm("pre_attention_norm")(x_BxLxD)
        if self.cross == "merged":
            y, c = Attention(cfg, "merged", self.kind, self.own_cross_kv, name="attn")(
                h_BxLxD, mask_BxLxS, positions_BxL, kv_input=enc_BxSxE,
                cache=None if cache is None else (cache["self"], cache["cross"]), cache_index=cache_index,
                cross_mask_BxLxS=cross_mask_BxLxS)
            if c is not None:
                new_cache["self"], new_cache["cross"] = c
        else:
            y, new_cache["self"] = Attention(cfg, "self", self.kind, name="attn")(
                h_BxLxD, mask_BxLxS, positions_BxL, cache=None if cache is None else cache["self"],
                cache_index=cache_index)
        x_BxLxD = x_BxLxD + drop(norm("post_attention_norm")(y))
        if self.cross == "separate":
            y, new_cache["cross"] = Attention(cfg, "cross", self.kind, name="cross_attn")(
                norm("pre_cross_attn_norm")(x_BxLxD), cross_mask_BxLxS, kv_input=enc_BxSxE,
                cache=None if cache is None else cache["cross"])
            x_BxLxD = x_BxLxD + drop(norm("post_cross_attn_norm")(y))
        y = FeedForward(cfg, name="mlp")(norm("pre_ffw_norm")(x_BxLxD))
        x_BxLxD = x_BxLxD + drop(norm("post_ffw_norm")(y))
        return x_BxLxD, (new_cache if cache is not None else None)


class Stack(nn.Module):
    """Embedding (optional) -> blocks with local/global attention -> final norm.

    `mask_BxLxS` is the base self-attention mask (causal / bidirectional / prefix, with padding); local
    layers additionally apply the sliding window over absolute indices (`cache_index` shifts the queries
    when decoding with a cache). `bidirectional` selects the window sides of the config's `window_rule`
    (`masks.window_sides`). Merged cross-attention windows only the self part; the encoder part is global.
    """

    cfg: GemmaConfig
    cross: CrossMode = "none"
    embed: bool = True
    own_cross_kv: bool = False

    def setup(self) -> None:
        cfg = self.cfg
        if self.embed:
            self.embedder = Embedder(cfg.vocab_size, cfg.embed_dim, cfg.activation_dtype, cfg.weight_dtype,
                                     cfg.eoi_token_id)
        self.layers = [Block(cfg, cross=self.cross, kind=kind, own_cross_kv=self.own_cross_kv, name=f"layer_{i}")
                       for i, kind in enumerate(cfg.attention_types)]
        self.final_norm = RMSNorm(cfg.rms_norm_eps, cfg.weight_dtype)

    def __call__(self, x_BxLxD: jnp.ndarray, mask_BxLxS: jnp.ndarray, positions_BxL: jnp.ndarray,
                 deterministic: bool = True, enc_BxSxE: jnp.ndarray | None = None,
                 cross_mask_BxLxS: jnp.ndarray | None = None, cache: list | None = None,
                 cache_index: jnp.ndarray | int = 0, bidirectional: bool = False) -> tuple[jnp.ndarray, list | None]:
        cfg = self.cfg
        L, S = mask_BxLxS.shape[-2:]
        local_mask = mask_BxLxS
        if cfg.sliding_window is not None and "local" in cfg.attention_types:
            sides = masks.window_sides(cfg.sliding_window, cfg.window_rule, bidirectional)
            band = masks.window_band(jnp.arange(L) + cache_index, jnp.arange(S), sides)
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
