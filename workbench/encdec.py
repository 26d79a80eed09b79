"""Encoder-decoder (T5Gemma, T5Gemma 2) as pure functions over a plain parameter dict.

params = {'encoder': {'embedder', 'layer_i', 'final_norm'}, 'decoder': {'embedder', 'layer_i' (with
'pre_cross_attn_norm', 'cross_attn', 'post_cross_attn_norm'), 'final_norm'}}. With `tie_embeddings` the
encoder has no embedder and reads the decoder's. With `merged_attention` (T5Gemma 2) a decoder layer has no
cross-attention sub-block: its `attn` attends to [decoder states; encoder outputs] (plus `cross_k_proj` /
`cross_v_proj` for a wider encoder). Decoder inputs are the targets shifted right (BOS first).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from workbench import masks
from workbench.config import EncDecConfig
from workbench.decoder import _check_tokens
from workbench.layers import Stack
from workbench.tree import param_count_of

Params = dict[str, Any]


class EncoderDecoder(nn.Module):
    """T5Gemma: bidirectional encoder stack + decoder stack with cross-attention."""

    cfg: EncDecConfig

    def setup(self) -> None:
        cfg = self.cfg
        self.encoder = Stack(cfg.encoder, embed=not cfg.tie_embeddings)
        self.decoder = Stack(cfg.decoder, cross="merged" if cfg.merged_attention else "separate",
                             own_cross_kv=cfg.merged_attention and not cfg.merged_shared_kv)

    def encode(self, tokens_BxS, mask_BxS=None, attention="bidirectional", deterministic=True):
        mask_BxS = _check_tokens(tokens_BxS, mask_BxS)
        embed = self.decoder if self.cfg.tie_embeddings else self.encoder
        x_BxSxD = embed.embed_tokens(tokens_BxS)
        hidden, _ = self.encoder(x_BxSxD, masks.self_attention_mask(mask_BxS, attention),
                                 masks.positions_from_mask(mask_BxS), deterministic,
                                 bidirectional=attention == "bidirectional")
        return hidden

    def decode(self, tokens_BxT, enc_BxSxE, enc_mask_BxS, dec_mask_BxT=None, deterministic=True, cache=None,
               cache_index=0, positions_BxT=None, self_mask_BxTxT=None, return_hidden=False):
        dec_mask_BxT = _check_tokens(tokens_BxT, dec_mask_BxT)
        if self_mask_BxTxT is None:
            self_mask_BxTxT = masks.self_attention_mask(dec_mask_BxT, "causal")
        if positions_BxT is None:
            positions_BxT = masks.positions_from_mask(dec_mask_BxT)
        cross = masks.cross_attention_mask(dec_mask_BxT, enc_mask_BxS)
        hidden, cache = self.decoder(self.decoder.embed_tokens(tokens_BxT), self_mask_BxTxT, positions_BxT,
                                     deterministic, enc_BxSxE, cross, cache, cache_index)
        out = hidden if return_hidden else self.decoder.logits(hidden)
        return out, cache

    def __call__(self, enc_tokens_BxS, dec_tokens_BxT, enc_mask_BxS=None, dec_mask_BxT=None,
                 deterministic=True, encoder_attention="bidirectional", return_hidden=False):
        enc_mask_BxS = _check_tokens(enc_tokens_BxS, enc_mask_BxS)
        enc = self.encode(enc_tokens_BxS, enc_mask_BxS, encoder_attention, deterministic)
        out, _ = self.decode(dec_tokens_BxT, enc, enc_mask_BxS, dec_mask_BxT, deterministic,
                             return_hidden=return_hidden)
        return out


def init(config: EncDecConfig, rng: jax.Array) -> Params:
    """Random parameters for both stacks."""
    tok = jnp.zeros((1, 1), jnp.int32)
    return EncoderDecoder(config).init(rng, tok, tok)["params"]


def forward(params: Params, config: EncDecConfig, enc_tokens_BxS: jnp.ndarray, dec_tokens_BxT: jnp.ndarray,
            enc_mask: jnp.ndarray | None = None, dec_mask: jnp.ndarray | None = None, *,
            encoder_attention: str = "bidirectional", deterministic: bool = True, rng: jax.Array | None = None,
            return_hidden: bool = False) -> jnp.ndarray:
    """Decoder logits [B, T, V] (fp32, soft-capped). `encoder_attention='causal'` is the causal-encoder
    ablation. `return_hidden` gives the decoder's final hidden states instead."""
    rngs = {"dropout": rng} if rng is not None else None
    return EncoderDecoder(config).apply({"params": params}, enc_tokens_BxS, dec_tokens_BxT, enc_mask, dec_mask,
                                        deterministic, encoder_attention, return_hidden, rngs=rngs)


def encode(params: Params, config: EncDecConfig, tokens_BxS: jnp.ndarray, mask_BxS: jnp.ndarray | None = None,
           *, attention: str = "bidirectional", deterministic: bool = True,
           rng: jax.Array | None = None) -> jnp.ndarray:
    """Encoder hidden states [B, S, D_enc] (after the final norm)."""
    rngs = {"dropout": rng} if rng is not None else None
    return EncoderDecoder(config).apply({"params": params}, tokens_BxS, mask_BxS, attention, deterministic,
                                        method=EncoderDecoder.encode, rngs=rngs)


def param_count(config: EncDecConfig) -> int:
    """Exact parameter count from `jax.eval_shape` (no memory)."""
    return param_count_of(init, config)
