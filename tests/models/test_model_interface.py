"""The one model interface (`models.model_for`), the architecture registry, the window rules and FLOPs of
Gemma 3 / T5Gemma 2, the Gemma 3 store round trip and held-out sampling."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import adapt, decoder, encdec, flops, generate, lm_eval, masks, zoo
from workbench.config import (
    ARCHITECTURES,
    EncoderOnlyConfig,
    GemmaConfig,
    config_from_dict,
    config_to_dict,
    decoder_preset,
    encdec_config,
    encdec_preset,
    gemma_config,
)
from workbench.models import model_for


def test_one_dispatch_over_model_kinds():
    dec = decoder_preset("tiny3")
    ed = encdec_preset("tiny3-tiny3")
    eo = EncoderOnlyConfig(encoder=dec)
    kinds = {c: model_for(c) for c in (dec, ed, eo)}
    assert [m.kind for m in kinds.values()] == ["decoder", "encdec", "encoder_only"]
    assert [m.hf_model_type for m in kinds.values()] == ["gemma3_text", "t5gemma2", None]
    assert model_for(decoder_preset("tiny")).hf_model_type == "gemma2"
    assert model_for(encdec_preset("tiny-tiny")).hf_model_type == "t5gemma"
    for m in kinds.values():
        assert m.param_count() == sum(math.prod(x.shape) for x in jax.tree.leaves(m.abstract_params()))
    assert kinds[dec].param_count() == decoder.param_count(dec)
    assert kinds[ed].param_count() == encdec.param_count(ed)
    with pytest.raises(TypeError, match="does not generate"):
        kinds[eo].generate({}, np.ones((1, 2), np.int32), 2)
    with pytest.raises(TypeError, match="no model kind for dict"):
        model_for({})


def test_generate_and_flops_go_through_the_interface():
    cfg = decoder_preset("tiny3")
    params = decoder.init(cfg, jax.random.key(0))
    prompt = jax.random.randint(jax.random.key(1), (2, 5), 3, cfg.vocab_size)
    a = generate.generate(params, cfg, prompt, 4)
    b = model_for(cfg).generate(params, prompt, 4)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert flops.generation_flops(cfg, 5, 4) == flops.decoder_generation_flops(cfg, 5, 4)
    ed = encdec_preset("tiny3-tiny3")
    assert flops.generation_flops(ed, 5, 4) == flops.encdec_generation_flops(ed, 5, 4)


def test_architecture_registry_defines_the_families():
    g3 = gemma_config("gemma3", vocab_size=64, num_layers=6, embed_dim=16, hidden_dim=32, num_heads=2, head_dim=8,
                      num_kv_heads=1, query_pre_attn_scalar=8)
    assert g3.qk_norm and g3.attn_logits_soft_cap is None and g3.final_logit_soft_cap is None
    assert g3.attention_types == ("local",) * 5 + ("global",)
    assert g3.rope_for("local") == (10_000.0, 1.0) and g3.rope_for("global") == (1_000_000.0, 1.0)
    assert decoder_preset("4B").rope_for("global") == (1_000_000.0, 8.0)
    ed = encdec_config(g3, g3)
    assert ed.tie_embeddings and ed.merged_attention and ed.merged_shared_kv
    big = g3.replace(embed_dim=32)
    unbalanced = encdec_config(big, g3)
    assert not unbalanced.tie_embeddings and unbalanced.merged_attention and not unbalanced.merged_shared_kv
    assert set(ARCHITECTURES) == {"gemma2", "gemma3"}
    with pytest.raises(ValueError, match="arch"):
        GemmaConfig(vocab_size=8, num_layers=1, embed_dim=4, hidden_dim=4, num_heads=1, head_dim=4, num_kv_heads=1,
                    query_pre_attn_scalar=4, arch="gemma9")
    assert config_from_dict(config_to_dict(encdec_preset("270M-270M"))) == encdec_preset("270M-270M")


@pytest.mark.parametrize("window", [1, 2, 3, 4, 7])
def test_window_rules_and_their_flops(window):
    L = 11
    q = jnp.arange(L)
    for rule in ("symmetric", "split"):
        band = masks.window_band(q, q, masks.window_sides(window, rule, bidirectional=True))
        d = np.subtract.outer(np.arange(L), np.arange(L))
        if rule == "symmetric":
            expected = np.abs(d) <= window - 1
        else:  # transformers' T5Gemma 2: 0 <= q-k < (w+1)//2 or 0 < k-q < w//2 + 1
            expected = ((d >= 0) & (d < (window + 1) // 2)) | ((d < 0) & (-d < window // 2 + 1))
        np.testing.assert_array_equal(np.asarray(band), expected)
        assert flops.visible_keys(L, "bidirectional", window, rule) == pytest.approx(expected.sum(-1).mean())
    # causal attention keeps the causal window whatever the rule
    causal = masks.causal_mask(L) & masks.window_band(q, q, masks.window_sides(window, "split", bidirectional=False))
    assert flops.visible_keys(L, "causal", window) == pytest.approx(np.asarray(causal).sum(-1).mean())


def test_merged_attention_flops_have_no_cross_q_o():
    ed = encdec_preset("tiny3-tiny3")
    sep = ed.replace(merged_attention=False)
    d, H, h, n = ed.decoder.embed_dim, ed.decoder.num_heads, ed.decoder.head_dim, ed.decoder.num_layers
    gap = flops.cross_attention_flops(sep, 16, 8) - flops.cross_attention_flops(ed, 16, 8)
    assert gap == pytest.approx(n * 8 * 2 * 2 * d * H * h)


def test_t5gemma2_adaptation_keeps_the_source_embedding_of_every_token():
    dc = decoder_preset("tiny3")
    dp = decoder.init(dc, jax.random.key(0))
    ed = encdec_config(dc, dc)
    ed = ed.replace(encoder=ed.encoder.replace(eoi_token_id=7), decoder=ed.decoder.replace(eoi_token_id=7))
    params = adapt.decoder_to_encdec(dp, ed)
    assert "embedder" not in params["encoder"]
    assert "cross_attn" not in params["decoder"]["layer_0"]  # merged: the self-attention K/V read the encoder
    emb = params["decoder"]["embedder"]
    np.testing.assert_allclose(emb["eoi_embedding"], dp["embedder"]["embedding"][7] * math.sqrt(dc.embed_dim),
                               rtol=1e-6)
    unbalanced = encdec_config(decoder_preset("tiny3-large"), dc)
    up = adapt.decoder_to_encdec(dp, unbalanced, enc_params=decoder.init(decoder_preset("tiny3-large"),
                                                                         jax.random.key(1)), rng=jax.random.key(2))
    assert adapt.cross_attention_only("decoder/layer_0/attn/cross_k_proj/kernel")
    assert up["decoder"]["layer_0"]["attn"]["cross_k_proj"]["kernel"].shape == (96, 32)


def test_store_round_trip_of_gemma3_and_t5gemma2(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path))
    for name, cfg, init in [("g3", decoder_preset("tiny3"), decoder.init),
                            ("t5g2", encdec_preset("tiny3-tiny3"), encdec.init)]:
        params = init(cfg, jax.random.key(0))
        zoo.save(name, cfg, params)
        got_cfg, got = zoo.load(name)
        assert got_cfg == cfg
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), params, got)


def test_heldout_documents_come_from_every_source_and_bits_per_byte():
    texts = [f"doc {i}" for i in range(30)]
    sources = ["a"] * 20 + ["b"] * 8 + ["c"] * 2
    docs = lm_eval.sample_documents(texts, sources, 9, seed=3)
    got = [d["source"] for d in docs]
    counts = {s: got.count(s) for s in "abc"}
    assert counts["c"] == 2 and sorted(counts.values()) == [2, 3, 4]  # round-robin; c runs out after 2
    assert len({d["text"] for d in docs}) == 9
    assert lm_eval.sample_documents(texts, sources, 9, seed=3) == docs
    with pytest.raises(ValueError):
        lm_eval.sample_documents(texts, sources, 31)

    class Chars:  # a character tokenizer: one token per byte of ASCII text
        bos_id, pad_id = 2, 0

        def encode(self, t):
            return [ord(c) for c in t]

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    rows, n_bytes = lm_eval.heldout_rows(Chars(), ["hello", "hi"], 4)
    np.testing.assert_array_equal(rows, [[2, 104, 101, 108], [2, 104, 105, 0]])
    assert n_bytes == 3 + 2
    cfg = decoder_preset("tiny3").replace(vocab_size=128)
    m = lm_eval.lm_heldout(decoder.init(cfg, jax.random.key(0)), cfg, rows, n_bytes)
    assert m["tokens"] == 5 and m["bits_per_byte"] == pytest.approx(m["nats_per_token"] * 5 / (math.log(2) * 5))
