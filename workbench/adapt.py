"""Model surgery as pure functions on parameter pytrees (decoder params in, new params out).

- `decoder_to_encdec`: balanced (encoder = the whole checkpoint; decoder layers copied; cross-attention
  from the same layer's self-attention) or unbalanced (encoder from a second, larger checkpoint;
  cross-attention random, to be warmed up alone for K steps: see `cross_attention_only`).
- `decoder_to_encoder_only` / `encdec_to_encoder_only`: a bidirectional encoder + fresh pooler/head.
- `from_scratch`: random init of any architecture (the from-scratch suite).

Choices where the paper is silent (documented, parameterised):
- balanced cross-attention norms copy the self-attention's pre/post norms (`cross_norms='copy'`) or start at
  unit gain (`'unit'`); unbalanced cross-attention always starts with unit-gain norms;
- random cross-attention uses the model's own initialiser (fan-in normal) for q/k/v/o;
- nothing is frozen by the surgery itself; the trainer's `freeze_steps` + `cross_attention_only` do that.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from workbench import decoder, encdec, encoder
from workbench.config import EncDecConfig, EncoderOnlyConfig, GemmaConfig
from workbench.models import model_for
from workbench.tree import path_str

Params = dict[str, Any]


def check_params(params: Params, expected: Params, what: str) -> None:
    """Raise ValueError naming every missing, unexpected or mis-shaped leaf of `params`."""
    def flat(t):
        return {path_str(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(t)[0]}
    got, want = flat(params), flat(expected)
    problems = [f"missing {k}" for k in sorted(want.keys() - got.keys())]
    problems += [f"unexpected {k}" for k in sorted(got.keys() - want.keys())]
    problems += [f"shape of {k}: {got[k]} != expected {want[k]}" for k in sorted(got.keys() & want.keys())
                 if got[k] != want[k]]
    if problems:
        raise ValueError(f"{what} does not match its config: " + "; ".join(problems))


def _copy(tree: Params) -> Params:
    """New containers, same (immutable) leaves: surgery never mutates its inputs."""
    return jax.tree_util.tree_map(lambda x: x, tree)


def _expected(init_fn, config) -> Params:
    return jax.eval_shape(lambda: init_fn(config, jax.random.key(0)))


def _as_source(stack: GemmaConfig) -> GemmaConfig:
    """The decoder-only checkpoint a stack is adapted from (an eoi embedding is added by the surgery)."""
    return stack.replace(eoi_token_id=None)


def _with_eoi(stack_params: Params, stack: GemmaConfig) -> Params:
    """Add the eoi embedding of a T5Gemma 2 stack: the source's scaled embedding row of that token, so the
    adapted model embeds every token exactly as its source did."""
    emb = stack_params["embedder"]
    if stack.eoi_token_id is None or "eoi_embedding" in emb:
        return stack_params
    row = emb["embedding"][stack.eoi_token_id].astype(stack.activation_dtype)
    scaled = row * jnp.asarray(math.sqrt(stack.embed_dim), stack.activation_dtype)
    return {**stack_params, "embedder": {**emb, "eoi_embedding": scaled.astype(emb["embedding"].dtype)}}


def decoder_to_encdec(dec_params: Params, config: EncDecConfig, *, enc_params: Params | None = None,
                      rng: jax.Array | None = None, cross_norms: str = "copy") -> Params:
    """Encoder-decoder params from decoder-only checkpoint(s).

    Balanced (`enc_params is None`): both stacks from `dec_params`, cross-attention copied from the same
    layer's self-attention (with `merged_attention` there is nothing to copy: the decoder's self-attention
    K/V weights also read the encoder). Unbalanced: encoder from `enc_params`, decoder from `dec_params`,
    cross-attention (merged: the encoder-side K/V kernels) random from `rng`. A T5Gemma 2 config's eoi
    embedding starts as the source's scaled embedding of that token.
    """
    if cross_norms not in ("copy", "unit"):
        raise ValueError(f"cross_norms must be 'copy' or 'unit', got {cross_norms!r}")
    unbalanced = enc_params is not None
    check_params(dec_params, _expected(decoder.init, _as_source(config.decoder)), "decoder checkpoint")
    check_params(enc_params if unbalanced else dec_params, _expected(decoder.init, _as_source(config.encoder)),
                 "encoder checkpoint")
    if unbalanced and rng is None:
        raise ValueError("unbalanced adaptation initialises cross-attention randomly: pass rng")
    if not unbalanced and config.encoder.embed_dim != config.decoder.embed_dim:
        raise ValueError("balanced adaptation needs equal widths; pass enc_params for an unbalanced pair")

    out_enc = _with_eoi(_copy(enc_params if unbalanced else dec_params), config.encoder)
    out_dec = _with_eoi(_copy(dec_params), config.decoder)
    fresh = encdec.init(config, rng)["decoder"] if unbalanced else None
    for i in range(config.decoder.num_layers):
        layer = out_dec[f"layer_{i}"]
        if config.merged_attention:
            if unbalanced:
                layer["attn"] = {**layer["attn"], **{k: fresh[f"layer_{i}"]["attn"][k]
                                                     for k in ("cross_k_proj", "cross_v_proj")}}
        elif unbalanced:
            for k in ("pre_cross_attn_norm", "cross_attn", "post_cross_attn_norm"):
                layer[k] = fresh[f"layer_{i}"][k]
        else:
            layer["cross_attn"] = _copy(layer["attn"])
            src = {"pre_cross_attn_norm": "pre_attention_norm", "post_cross_attn_norm": "post_attention_norm"}
            for k, s in src.items():
                scale = layer[s]["scale"]
                layer[k] = {"scale": scale if cross_norms == "copy" else scale * 0}
    if config.tie_embeddings:
        out_enc.pop("embedder")
    params = {"encoder": out_enc, "decoder": out_dec}
    check_params(params, _expected(encdec.init, config), "adapted encoder-decoder")
    return params


def cross_attention_only(path: str) -> bool:
    """Trainable predicate for the unbalanced warm-up: only cross-attention (and its norms) train; with
    merged attention, the encoder-side K/V kernels."""
    return ("/cross_attn/" in path or "_cross_attn_norm/" in path or "/cross_k_proj/" in path
            or "/cross_v_proj/" in path)


@functools.partial(jax.jit, static_argnums=0)
def _fresh_head(config: EncoderOnlyConfig, rng: jax.Array) -> Params:
    """New pooler/head params. Jitted: the stack's throwaway initialisation is dead code, never computed or
    allocated (eagerly it cost a full random model, seconds of op-by-op compiles on a CPU); same values."""
    fresh = encoder.init(config, rng)
    return {k: v for k, v in fresh.items() if k != "encoder"}


def decoder_to_encoder_only(dec_params: Params, config: EncoderOnlyConfig, rng: jax.Array) -> Params:
    """Gemma Encoder: the decoder-only stack (bidirectional via `config.causal=False`) + new pooler/head."""
    check_params(dec_params, _expected(decoder.init, config.encoder), "decoder checkpoint")
    return {"encoder": _copy(dec_params), **_fresh_head(config, rng)}


def encdec_to_encoder_only(ed_params: Params, ed_config: EncDecConfig, config: EncoderOnlyConfig,
                           rng: jax.Array) -> Params:
    """The encoder of an adapted encoder-decoder + new pooler/head (EmbeddingGemma's comparison)."""
    if config.encoder.replace(dropout_rate=0.0) != ed_config.encoder.replace(dropout_rate=0.0):
        raise ValueError("EncoderOnlyConfig.encoder must equal the encoder-decoder's encoder config")
    enc = _copy(ed_params["encoder"])
    if ed_config.tie_embeddings:
        enc["embedder"] = _copy(ed_params["decoder"]["embedder"])
    check_params(enc, _expected(decoder.init, config.encoder), "encoder of the encoder-decoder")
    return {"encoder": enc, **_fresh_head(config, rng)}


def from_scratch(config: GemmaConfig | EncDecConfig | EncoderOnlyConfig, rng: jax.Array) -> Params:
    """Random parameters for any of the three model kinds."""
    return model_for(config).init(rng)
