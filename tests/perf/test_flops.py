"""workbench.flops against hand formulas (explicit arithmetic, masks enumerated) and 6 * N_params."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import decoder, encdec, flops, masks
from workbench.config import EncDecConfig, GemmaConfig, decoder_preset

# d=8, H=2 x h=4, K=1, F=16, V=32, 2 layers (local window 3, then global).
TINY = GemmaConfig(vocab_size=32, num_layers=2, embed_dim=8, hidden_dim=16, num_heads=2, head_dim=4,
                   num_kv_heads=1, query_pre_attn_scalar=4, sliding_window=3)


def _mask_keys(mask_LxS) -> float:
    """Average True entries per row of an explicit boolean mask."""
    return float(np.asarray(mask_LxS).sum(axis=-1).mean())


@pytest.mark.parametrize("L", [1, 2, 5, 9])
@pytest.mark.parametrize("window", [None, 1, 3, 16])
def test_visible_keys_match_enumerated_masks(L, window):
    causal = masks.causal_mask(L)
    bidir = masks.bidirectional_mask(L)
    if window is not None:
        band = masks.sliding_window_mask(jnp.arange(L), jnp.arange(L), window)
        causal, bidir = causal & band, bidir & band
    assert flops.visible_keys(L, "causal", window) == pytest.approx(_mask_keys(causal))
    assert flops.visible_keys(L, "bidirectional", window) == pytest.approx(_mask_keys(bidir))


def test_visible_keys_closed_forms():
    assert flops.visible_keys(7, "causal") == (7 + 1) / 2
    # window 3, L 5, causal: 1, 2, 3, 3, 3
    assert flops.visible_keys(5, "causal", 3) == (1 + 2 + 3 + 3 + 3) / 5
    # window 3 two-sided (|q-k| <= 2), L 5: 3, 4, 5, 4, 3
    assert flops.visible_keys(5, "bidirectional", 3) == (3 + 4 + 5 + 4 + 3) / 5
    with pytest.raises(ValueError):
        flops.visible_keys(4, "prefix")


def test_forward_flops_tiny_by_hand():
    L = 5
    proj = 2 * (8 * 8 + 8 * 4 + 8 * 4 + 8 * 8) + 2 * 3 * 8 * 16  # q, k, v, o + gate, up, down
    att_local = 4 * 2 * 4 * ((1 + 2 + 3 + 3 + 3) / 5)  # 2 products x 2*H*h per visible key
    att_global = 4 * 2 * 4 * ((5 + 1) / 2)
    head = 2 * 8 * 32
    expected = 2 * proj + att_local + att_global + head
    assert flops.forward_flops_per_token(TINY, L) == pytest.approx(expected)
    assert flops.train_flops_per_token(TINY, L) == pytest.approx(3 * expected)
    att_bidir = 4 * 2 * 4 * ((3 + 4 + 5 + 4 + 3) / 5) + 4 * 2 * 4 * 5
    assert flops.forward_flops_per_token(TINY, L, "bidirectional", lm_head=False) == pytest.approx(
        2 * proj + att_bidir)


def test_encdec_and_generation_tiny_by_hand():
    cfg = EncDecConfig(encoder=TINY, decoder=TINY)
    S, T = 5, 4
    enc = S * flops.forward_flops_per_token(TINY, S, "bidirectional", lm_head=False)
    dec = T * flops.forward_flops_per_token(TINY, T, "causal")
    # cross-attention per decoder layer: q and o per decoder token, k and v per encoder token, T x S products
    cross = 2 * (T * (2 * 8 * 8 * 2) + S * (2 * 8 * 4 * 2) + T * 4 * 2 * 4 * S)
    assert flops.encdec_flops_per_example(cfg, S, T) == pytest.approx(enc + dec + cross)
    assert flops.encdec_flops_per_example(cfg, S, T, train=True) == pytest.approx(3 * (enc + dec + cross))
    assert flops.generation_flops(cfg, S, T) == pytest.approx(enc + dec + cross)

    # decoder-only: prompt 3, 4 new tokens -> 6 tokens pass the stack, LM head on 4 of them
    P, N = 3, 4
    body = 6 * flops.forward_flops_per_token(TINY, 6, lm_head=False)
    assert flops.generation_flops(TINY, P, N) == pytest.approx(body + N * 2 * 8 * 32)


def test_decoder_seq2seq_flops_count_the_head_on_targets_only():
    """Decoder-only seq2seq: the stack over S + T tokens, the LM head on the T positions predicting targets."""
    from workbench.models import model_for

    S, T = 5, 4
    body = (S + T) * flops.forward_flops_per_token(TINY, S + T, lm_head=False)
    head = T * 2 * 8 * 32
    assert flops.decoder_seq2seq_flops_per_example(TINY, S, T) == pytest.approx(body + head)
    assert model_for(TINY).train_flops_per_example(S, T) == pytest.approx(3 * (body + head))
    # without a target length: causal LM over the whole sequence, the head on every position
    assert model_for(TINY).train_flops_per_example(S + T) == pytest.approx(
        3 * (body + (S + T) * 2 * 8 * 32))


def test_six_n_params_without_attention():
    cfg = decoder_preset("L", vocab_size=32_000)
    n = decoder.param_count(cfg)
    norms = cfg.num_layers * 4 * cfg.embed_dim + cfg.embed_dim
    assert flops.train_flops_per_token(cfg, 4096, attention=False) == 6 * (n - norms)
    # attention adds a modest share at 4096 tokens (window 4096 = global here)
    ratio = flops.train_flops_per_token(cfg, 4096) / (6 * n)
    assert 1.0 < ratio < 1.5


def test_encdec_balanced_params_match():
    cfg = EncDecConfig(encoder=TINY, decoder=TINY)
    n = encdec.param_count(cfg)
    no_att = (flops.forward_flops_per_token(TINY, 4, lm_head=False, attention=False) * 2
              + flops.lm_head_flops_per_token(TINY) + 2 * (2 * 2 * 8 * 8 + 2 * 2 * 8 * 4))
    # every matmul weight used once per token (encoder + decoder + cross + head); norms and the
    # encoder's separate embedding table are the parameters that cost no matmul
    norms = 2 * (2 * 4 * 8 + 8) + 2 * 2 * 8
    assert no_att / 2 == n - norms - 32 * 8


def test_mfu():
    assert flops.mfu(1000.0, 1e9, 2e12) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        flops.mfu(1.0, 1.0, 0.0)


def test_xla_cost_analysis_within_loose_factor():
    """XLA counts the dense attention block and elementwise ops too: within 0.8x - 2x of ours."""
    cfg = TINY.replace(vocab_size=256, embed_dim=64, hidden_dim=128, num_heads=4, head_dim=16, num_kv_heads=2,
                       query_pre_attn_scalar=16, sliding_window=8)
    L, B = 32, 2
    params = decoder.init(cfg, jax.random.key(0))
    tokens = jnp.ones((B, L), jnp.int32)
    cost = jax.jit(lambda p, t: decoder.forward(p, cfg, t)).lower(params, tokens).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    ours = B * L * flops.forward_flops_per_token(cfg, L)
    assert 0.8 < cost["flops"] / ours < 2.0
