"""Jitted generation with a KV cache: greedy and sampling (temperature, top-k, top-p).

Decoder-only models continue the prompt; encoder-decoder models encode the prompt once, compute the
cross-attention K/V once, and decode from BOS. Prompts may be padded on either side (`prompt_mask`); rows
are left-aligned internally so that every row continues at the same cache index. Output: the new tokens
[B, max_new_tokens], `pad_id` after a row's EOS.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from workbench import masks
from workbench.config import EncDecConfig, GemmaConfig
from workbench.encdec import EncoderDecoder
from workbench.layers import Stack

Params = dict[str, Any]


def sample_logits(rng: jax.Array, logits_BxV: jnp.ndarray, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> jnp.ndarray:
    """Draw one token per row after temperature scaling, then top-k and nucleus (top-p) filtering."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use greedy=True for argmax decoding)")
    logits = logits_BxV.astype(jnp.float32) / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p is not None:
        sorted_desc = jnp.sort(logits, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(sorted_desc, axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token is always kept).
        keep = (jnp.cumsum(probs, axis=-1) - probs) < top_p
        cutoff = jnp.min(jnp.where(keep, sorted_desc, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    return jax.random.categorical(rng, logits, axis=-1)


def _kv_cache(cfg: GemmaConfig, batch: int, length: int, cross_len: int | None = None) -> list[dict]:
    def kv(n: int) -> dict[str, jnp.ndarray]:
        z = jnp.zeros((batch, n, cfg.num_kv_heads, cfg.head_dim), cfg.activation_dtype)
        return {"k": z, "v": z}

    layer = {"self": kv(length)}
    if cross_len is not None:
        layer["cross"] = kv(cross_len)
    return [dict(layer) for _ in range(cfg.num_layers)]


def _is_eos(tok_B: jnp.ndarray, eos_ids: tuple[int, ...]) -> jnp.ndarray:
    return jnp.isin(tok_B, jnp.asarray(eos_ids))


def _decode_loop(step_fn, first_logits_BxV, state, rng, max_new_tokens, start_index, sampling, eos_ids, pad_id):
    """Shared loop: pick a token, record it, run one cached step, until max length or every row ended."""
    B = first_logits_BxV.shape[0]
    greedy, temperature, top_k, top_p = sampling

    def pick(rng, logits):
        if greedy:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return sample_logits(rng, logits, temperature, top_k, top_p).astype(jnp.int32)

    def cond(carry):
        i, _, done, *_ = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        i, out_BxN, done_B, logits_BxV, state, rng = carry
        rng, sub = jax.random.split(rng)
        tok_B = jnp.where(done_B, pad_id, pick(sub, logits_BxV))
        out_BxN = out_BxN.at[:, i].set(tok_B)
        done_B = done_B | _is_eos(tok_B, eos_ids)
        logits_BxV, state = step_fn(tok_B, start_index + i, state)
        return i + 1, out_BxN, done_B, logits_BxV, state, rng

    out = jnp.full((B, max_new_tokens), pad_id, jnp.int32)
    carry = (jnp.int32(0), out, jnp.zeros((B,), bool), first_logits_BxV, state, rng)
    return jax.lax.while_loop(cond, body, carry)[1]


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens", "sampling", "eos_ids", "pad_id"))
def _generate_decoder(params, cfg: GemmaConfig, tokens_BxS, mask_BxS, rng, max_new_tokens, sampling, eos_ids,
                      pad_id):
    tokens_BxS, mask_BxS = masks.left_align(tokens_BxS, mask_BxS)
    B, S = tokens_BxS.shape
    T = S + max_new_tokens
    stack = Stack(cfg)
    valid_BxT = jnp.concatenate([mask_BxS, jnp.zeros((B, max_new_tokens), bool)], axis=1)
    positions_BxS = masks.positions_from_mask(mask_BxS)

    def run(tokens_BxL, attn_BxLxT, positions_BxL, cache, index):
        def f(m):
            hidden, cache_out = m(m.embed_tokens(tokens_BxL), attn_BxLxT, positions_BxL, cache=cache,
                                  cache_index=index)
            return m.logits(hidden[:, -1:])[:, 0], cache_out
        return stack.apply({"params": params}, method=f)

    prefill_mask = masks.causal_mask(S, T)[None] & valid_BxT[:, None, :]
    logits_BxV, cache = run(tokens_BxS, prefill_mask, positions_BxS, _kv_cache(cfg, B, T), 0)

    def step(tok_B, index, state):
        cache, valid_BxT, pos_B = state
        valid_BxT = valid_BxT.at[:, index].set(True)
        attn = (valid_BxT & (jnp.arange(T)[None] <= index))[:, None, :]
        logits, cache = run(tok_B[:, None], attn, pos_B[:, None], cache, index)
        return logits, (cache, valid_BxT, pos_B + 1)

    state = (cache, valid_BxT, positions_BxS[:, -1] + 1)
    return _decode_loop(step, logits_BxV, state, rng, max_new_tokens, S, sampling, eos_ids, pad_id)


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens", "sampling", "eos_ids", "pad_id", "bos_id"))
def _generate_encdec(params, cfg: EncDecConfig, tokens_BxS, mask_BxS, rng, max_new_tokens, sampling, eos_ids,
                     pad_id, bos_id):
    model = EncoderDecoder(cfg)
    B, S = tokens_BxS.shape
    T = max_new_tokens
    enc_BxSxE = model.apply({"params": params}, tokens_BxS, mask_BxS, method=EncoderDecoder.encode)
    ones = jnp.ones((B, 1), bool)

    def run(tok_B, index, cache, enc):
        attn = (jnp.arange(T) <= index)[None, None, :].repeat(B, axis=0)
        pos = jnp.full((B, 1), index, jnp.int32)
        (logits, cache) = model.apply({"params": params}, tok_B[:, None], enc, mask_BxS, ones, True, cache, index,
                                      pos, attn, method=EncoderDecoder.decode)
        return logits[:, 0], cache

    cache = _kv_cache(cfg.decoder, B, T, cross_len=S)
    logits_BxV, cache = run(jnp.full((B,), bos_id, jnp.int32), 0, cache, enc_BxSxE)

    def step(tok_B, index, cache):
        return run(tok_B, index, cache, None)

    return _decode_loop(step, logits_BxV, cache, rng, max_new_tokens, 1, sampling, eos_ids, pad_id)


_Sampling = tuple[bool, float, int | None, float | None]


def _prepare(prompt_BxS, max_new_tokens, prompt_mask, greedy, temperature, top_k, top_p, rng, eos_id):
    """Validated (prompt, mask, rng, sampling, eos_ids) shared by both model kinds."""
    prompt_BxS = jnp.asarray(prompt_BxS, jnp.int32)
    if prompt_BxS.ndim != 2 or prompt_BxS.shape[1] == 0:
        raise ValueError(f"prompt must be [batch, length>0], got shape {prompt_BxS.shape}")
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    mask = jnp.ones(prompt_BxS.shape, bool) if prompt_mask is None else jnp.asarray(prompt_mask, bool)
    if mask.shape != prompt_BxS.shape:
        raise ValueError(f"prompt_mask shape {mask.shape} != prompt shape {prompt_BxS.shape}")
    if not greedy and rng is None:
        raise ValueError("sampling needs an rng (jax.random.key)")
    if not greedy and temperature <= 0:
        raise ValueError("temperature must be > 0 (use greedy=True for argmax decoding)")
    rng = jax.random.key(0) if rng is None else rng
    sampling: _Sampling = (greedy, float(temperature), top_k, top_p)
    eos_ids = (eos_id,) if isinstance(eos_id, int) else tuple(eos_id)
    return prompt_BxS, mask, rng, sampling, eos_ids


def generate_decoder(params: Params, config: GemmaConfig, prompt_BxS: jnp.ndarray, max_new_tokens: int,
                     prompt_mask: jnp.ndarray | None = None, *, greedy: bool = True, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None, rng: jax.Array | None = None,
                     eos_id: int | tuple[int, ...] = 1, pad_id: int = 0, bos_id: int = 2) -> jnp.ndarray:
    """Decoder-only generation: continue each prompt (`bos_id` is unused: the prompt carries its own BOS)."""
    prompt_BxS, mask, rng, sampling, eos_ids = _prepare(prompt_BxS, max_new_tokens, prompt_mask, greedy,
                                                        temperature, top_k, top_p, rng, eos_id)
    return _generate_decoder(params, config, prompt_BxS, mask, rng, max_new_tokens, sampling, eos_ids, pad_id)


def generate_encdec(params: Params, config: EncDecConfig, prompt_BxS: jnp.ndarray, max_new_tokens: int,
                    prompt_mask: jnp.ndarray | None = None, *, greedy: bool = True, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, rng: jax.Array | None = None,
                    eos_id: int | tuple[int, ...] = 1, pad_id: int = 0, bos_id: int = 2) -> jnp.ndarray:
    """Encoder-decoder generation: encode the prompt once, decode from `bos_id`."""
    prompt_BxS, mask, rng, sampling, eos_ids = _prepare(prompt_BxS, max_new_tokens, prompt_mask, greedy,
                                                        temperature, top_k, top_p, rng, eos_id)
    return _generate_encdec(params, config, prompt_BxS, mask, rng, max_new_tokens, sampling, eos_ids, pad_id,
                            bos_id)


def generate(params: Params, config: GemmaConfig | EncDecConfig, prompt_BxS: jnp.ndarray, max_new_tokens: int,
             prompt_mask: jnp.ndarray | None = None, **kwargs) -> jnp.ndarray:
    """Generate up to `max_new_tokens` tokens per row; returns [B, max_new_tokens] (pad after EOS).

    Keyword options: greedy (default True), temperature, top_k, top_p, rng, eos_id (int or tuple),
    pad_id, bos_id. Works for every generative model kind (`models.model_for(config).generate`).
    """
    from workbench.models import model_for

    return model_for(config).generate(params, prompt_BxS, max_new_tokens, prompt_mask, **kwargs)
