"""Initializers are pure functions with visible, testable surgery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import adapt, decoder, encdec, encoder
from workbench import config as C

DEC = C.decoder_preset("tiny")
BIG = C.decoder_preset("tiny-large")


def test_balanced_with_zero_cross_output_equals_decoder_only():
    params = decoder.init(DEC, jax.random.key(0))
    cfg = C.EncDecConfig(DEC, DEC)
    ed = adapt.decoder_to_encdec(params, cfg)
    for i in range(DEC.num_layers):
        ed["decoder"][f"layer_{i}"]["cross_attn"]["o_proj"]["kernel"] *= 0
    tokens = jnp.arange(3, 23)[None]  # longer than the window
    ref = decoder.forward(params, DEC, tokens)
    out = encdec.forward(ed, cfg, jnp.arange(40, 50)[None], tokens)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def test_balanced_copies_everything():
    params = decoder.init(DEC, jax.random.key(0))
    ed = adapt.decoder_to_encdec(params, C.EncDecConfig(DEC, DEC))
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.array_equal(a, b)), ed["encoder"], params)
    assert all(jax.tree_util.tree_leaves(same))
    layer = ed["decoder"]["layer_2"]
    for k in ("q_proj", "k_proj", "v_proj", "o_proj"):
        np.testing.assert_array_equal(layer["cross_attn"][k]["kernel"], params["layer_2"]["attn"][k]["kernel"])
    np.testing.assert_array_equal(layer["mlp"]["up_proj"]["kernel"], params["layer_2"]["mlp"]["up_proj"]["kernel"])
    # Pure: the input tree is not modified.
    assert "cross_attn" not in params["layer_2"]


def test_unbalanced_encoder_from_large_checkpoint():
    small, large = decoder.init(DEC, jax.random.key(0)), decoder.init(BIG, jax.random.key(1))
    cfg = C.EncDecConfig(BIG, DEC)
    ed = adapt.decoder_to_encdec(small, cfg, enc_params=large, rng=jax.random.key(2))
    np.testing.assert_array_equal(ed["encoder"]["layer_5"]["mlp"]["down_proj"]["kernel"],
                                  large["layer_5"]["mlp"]["down_proj"]["kernel"])
    cross = ed["decoder"]["layer_0"]["cross_attn"]
    assert cross["k_proj"]["kernel"].shape == (BIG.embed_dim, DEC.num_kv_heads * DEC.head_dim)
    assert float(jnp.abs(ed["decoder"]["layer_0"]["pre_cross_attn_norm"]["scale"]).max()) == 0.0
    assert adapt.cross_attention_only("decoder/layer_0/cross_attn/q_proj/kernel")
    assert adapt.cross_attention_only("decoder/layer_0/pre_cross_attn_norm/scale")
    assert not adapt.cross_attention_only("decoder/layer_0/attn/q_proj/kernel")
    with pytest.raises(ValueError, match="rng"):
        adapt.decoder_to_encdec(small, cfg, enc_params=large)


def test_mismatched_checkpoint_names_every_key():
    params = decoder.init(DEC, jax.random.key(0))
    bad = jax.tree_util.tree_map(lambda x: x, params)
    del bad["layer_1"]["mlp"]
    bad["extra"] = {"w": jnp.zeros(3)}
    bad["layer_0"]["attn"]["q_proj"]["kernel"] = jnp.zeros((3, 3))
    with pytest.raises(ValueError) as e:
        adapt.decoder_to_encdec(bad, C.EncDecConfig(DEC, DEC))
    msg = str(e.value)
    for key in ("missing layer_1/mlp/up_proj/kernel", "unexpected extra/w", "shape of layer_0/attn/q_proj/kernel"):
        assert key in msg


def test_encoder_only_surgery():
    params = decoder.init(DEC, jax.random.key(0))
    cfg = C.EncoderOnlyConfig(DEC, pooling="attention", num_labels=3)
    p = adapt.decoder_to_encoder_only(params, cfg, jax.random.key(1))
    assert set(p) == {"encoder", "pooler", "head"}
    assert encoder.forward(p, cfg, jnp.arange(3, 9)[None]).shape == (1, 3)
    ed_cfg = C.EncDecConfig(DEC, DEC, tie_embeddings=True)
    ed = adapt.decoder_to_encdec(params, ed_cfg)
    assert "embedder" not in ed["encoder"]
    p2 = adapt.encdec_to_encoder_only(ed, ed_cfg, cfg, jax.random.key(1))
    np.testing.assert_array_equal(p2["encoder"]["embedder"]["embedding"], params["embedder"]["embedding"])
    scratch = adapt.from_scratch(cfg, jax.random.key(3))
    assert jax.tree_util.tree_structure(scratch) == jax.tree_util.tree_structure(p)
