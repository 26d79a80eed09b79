"""Gradient-based proofs of the attention patterns, and mask/position helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import config as C
from workbench import decoder, encdec, masks
from workbench.layers import Stack

CFG = C.decoder_preset("tiny", sliding_window=4)


def _dependence(cfg, kind, L=10, prefix=None):
    """|d out[t] / d x[s]| summed: [L(t), L(s)] matrix of which inputs each output depends on."""
    params = decoder.init(cfg, jax.random.key(0))
    mask = jnp.ones((1, L), bool)
    attn = masks.self_attention_mask(mask, kind, prefix)
    pos = masks.positions_from_mask(mask)
    x = jax.random.normal(jax.random.key(1), (1, L, cfg.embed_dim))

    r = jax.random.normal(jax.random.key(2), (L, cfg.embed_dim))

    def out_t(x, t):  # a random projection of output t: nonzero gradient wherever t depends on x[s]
        return jnp.sum(Stack(cfg).apply({"params": params}, x, attn, pos)[0][0, t] * r[t])

    grads = jax.vmap(jax.grad(out_t), in_axes=(None, 0))(x, jnp.arange(L))  # [L(t), 1, L(s), D]
    return np.asarray(jnp.abs(grads).sum(axis=(1, 3)))


def test_decoder_is_causal():
    dep = _dependence(CFG, "causal")
    assert np.all(dep[np.triu_indices(10, 1)] == 0), "an output depends on a future input"
    assert np.all(np.diag(dep) > 0) and dep[9, 0] > 0


def test_encoder_is_bidirectional():
    dep = _dependence(CFG, "bidirectional")
    assert np.all(dep > 0), "bidirectional attention not applied everywhere"


def test_prefix_lm_mask():
    prefix = jnp.arange(10)[None] < 4
    dep = _dependence(CFG, "prefix", prefix=prefix)
    assert np.all(dep[:4, :4] > 0), "prefix positions must see the whole prefix"
    assert np.all(dep[np.triu_indices(10, 1)][~(np.triu_indices(10, 1)[1] < 4)] == 0)
    assert np.all(dep[4:, :4] > 0)


@pytest.mark.parametrize("kind", ["causal", "bidirectional"])
def test_sliding_window_honoured(kind):
    cfg = CFG.replace(num_layers=1, attention_pattern=("local",))
    dep = _dependence(cfg, kind, L=12)
    t, s = np.indices(dep.shape)
    allowed = np.abs(t - s) <= cfg.sliding_window - 1
    if kind == "causal":
        allowed &= s <= t
    assert np.all(dep[~allowed] == 0) and np.all(dep[allowed] > 0)
    # A global layer sees everything again.
    dep_g = _dependence(cfg.replace(attention_pattern=("global",)), kind, L=12)
    assert np.all(dep_g[(s <= t) if kind == "causal" else np.ones_like(allowed)] > 0)


def test_encdec_encoder_bidirectional_decoder_causal():
    cfg = C.encdec_preset("tiny-tiny")
    params = encdec.init(cfg, jax.random.key(0))
    S, T, D = 8, 6, cfg.decoder.embed_dim
    enc_mask, dec_mask = jnp.ones((1, S), bool), jnp.ones((1, T), bool)
    r = jax.random.normal(jax.random.key(2), (T, D))

    def out_t(x_enc, x_dec, t):
        def run(m):
            h, _ = m.encoder(x_enc, masks.self_attention_mask(enc_mask, "bidirectional"),
                             masks.positions_from_mask(enc_mask))
            out, _ = m.decoder(x_dec, masks.self_attention_mask(dec_mask, "causal"),
                               masks.positions_from_mask(dec_mask), True, h,
                               masks.cross_attention_mask(dec_mask, enc_mask))
            return out[0, t]
        return jnp.sum(encdec.EncoderDecoder(cfg).apply({"params": params}, method=run) * r[t])

    x_enc = jax.random.normal(jax.random.key(3), (1, S, D))
    x_dec = jax.random.normal(jax.random.key(4), (1, T, D))
    g_enc, g_dec = jax.vmap(jax.grad(out_t, argnums=(0, 1)), in_axes=(None, None, 0))(x_enc, x_dec, jnp.arange(T))
    dep_enc = np.asarray(jnp.abs(g_enc).sum(axis=(1, 3)))  # [T, S]
    dep_dec = np.asarray(jnp.abs(g_dec).sum(axis=(1, 3)))  # [T, T]
    assert np.all(dep_enc > 0), "every decoder position must see every encoder token"
    assert np.all(dep_dec[np.triu_indices(T, 1)] == 0), "decoder sees the future"
    assert np.all(dep_dec[np.tril_indices(T)] > 0)


def test_positions_and_left_align():
    mask = jnp.array([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    np.testing.assert_array_equal(masks.positions_from_mask(mask), [[0, 0, 0, 1, 2], [0, 1, 2, 2, 2]])
    toks = jnp.array([[0, 0, 5, 6, 7], [5, 6, 7, 0, 0]])
    t, m = masks.left_align(toks, mask)
    np.testing.assert_array_equal(t, [[0, 0, 5, 6, 7], [0, 0, 5, 6, 7]])
    np.testing.assert_array_equal(m, [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(masks.shift_right(jnp.array([[7, 8, 1]])), [[2, 7, 8]])


def test_padding_does_not_change_logits():
    cfg = C.decoder_preset("tiny")
    params = decoder.init(cfg, jax.random.key(0))
    toks = jnp.arange(3, 15)[None]
    ref = decoder.forward(params, cfg, toks)
    for pad_left in (True, False):
        pad = jnp.zeros((1, 3), toks.dtype)
        padded = jnp.concatenate([pad, toks] if pad_left else [toks, pad], axis=1)
        m = padded != 0
        out = decoder.forward(params, cfg, padded, m)
        real = out[0, 3:] if pad_left else out[0, :12]
        np.testing.assert_allclose(real, ref[0], atol=1e-5)


def test_norm_scales_init_zero_and_shape_errors():
    params = decoder.init(CFG, jax.random.key(0))
    assert float(jnp.abs(params["layer_0"]["pre_attention_norm"]["scale"]).max()) == 0.0
    assert float(jnp.abs(params["final_norm"]["scale"]).max()) == 0.0
    with pytest.raises(ValueError, match="tokens must be"):
        decoder.forward(params, CFG, jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="mask shape"):
        decoder.forward(params, CFG, jnp.zeros((1, 4), jnp.int32), jnp.ones((1, 5), bool))


def test_bf16_activations_close_to_fp32():
    params = decoder.init(CFG, jax.random.key(0))
    toks = jnp.arange(3, 19)[None]
    f32 = decoder.forward(params, CFG, toks)
    b16 = decoder.forward(params, CFG.replace(dtype="bfloat16"), toks)
    assert b16.dtype == jnp.float32
    assert float(jnp.abs(f32 - b16).max()) < 0.1
