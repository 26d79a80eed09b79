"""Encoder-decoder parity with transformers' T5GemmaForConditionalGeneration (eager attention, fp32)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from _interop_helpers import (
    SMALL,
    TOL,
    WIDE,
    WINDOW,
    encdec_forward,
    max_diff,
    report,
    t5gemma_model,
    tokens,
    until_eos,
)

from workbench import generate, masks
from workbench.interop import load_hf_t5gemma, save_hf_t5gemma

B, S, T = 2, WINDOW, 10  # encoder input within the window: HF 5.x and Flax window rules agree there
# Two to three layers per stack (local + global) keep the XLA compilations short.
PAIRS = {"balanced": ({**SMALL, "num_hidden_layers": 2}, {**SMALL, "num_hidden_layers": 2}),
         "unbalanced": ({**WIDE, "num_hidden_layers": 3}, {**SMALL, "num_hidden_layers": 2})}


@pytest.fixture(scope="module", params=sorted(PAIRS))
def pair(request, tmp_path_factory):
    enc, dec = PAIRS[request.param]
    model = t5gemma_model(enc, dec, seed=1)
    path = tmp_path_factory.mktemp(f"t5gemma-{request.param}")
    model.save_pretrained(path)
    config, params = load_hf_t5gemma(path)
    return request.param, model, config, params


def _hf_logits(model, enc, dec, enc_mask):
    with torch.no_grad():
        return model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc_mask),
                     decoder_input_ids=torch.tensor(dec)).logits.numpy()


def _ours(params, config, enc, dec, enc_mask):
    return encdec_forward(params, config, jnp.asarray(enc, jnp.int32), jnp.asarray(dec, jnp.int32),
                          jnp.asarray(enc_mask, bool), jnp.ones(dec.shape, bool))


def _inputs(seed: int, s: int = S):
    enc, dec = tokens(seed, (B, s)), tokens(seed + 100, (B, T))
    enc_mask = np.ones_like(enc)
    enc_mask[1, -3:] = 0  # right padding (HF's encoder positions are arange; equal to ours for right padding)
    return np.where(enc_mask == 1, enc, 0), dec, enc_mask


def test_hf_saved_model_loads_with_equal_logits(pair):
    name, model, config, params = pair
    enc, dec, enc_mask = _inputs(0)
    d = max_diff(_hf_logits(model, enc, dec, enc_mask), _ours(params, config, enc, dec, enc_mask))
    report(f"t5gemma {name} HF->ours", d)
    assert d <= TOL


def test_our_model_saved_loads_in_hf_with_equal_logits(pair, tmp_path):
    name, _, config, loaded = pair
    # New weights of our own (perturbed, so nothing is left over from the HF model); encdec.init's shapes
    # are what save_hf_t5gemma checks against.
    rng = np.random.RandomState(7)
    params = jax.tree.map(lambda x: np.asarray(x) * (1 + 0.2 * rng.standard_normal(x.shape)).astype(np.float32)
                          + 0.05 * rng.standard_normal(x.shape).astype(np.float32), loaded)
    save_hf_t5gemma(config, params, tmp_path)
    model, info = transformers.T5GemmaForConditionalGeneration.from_pretrained(
        tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    enc, dec, enc_mask = _inputs(1)
    d = max_diff(_hf_logits(model.eval(), enc, dec, enc_mask), _ours(params, config, enc, dec, enc_mask))
    report(f"t5gemma {name} ours->HF", d)
    assert d <= TOL


def test_encoder_window_rule_differs_from_hf_by_one(pair):
    """Encoder longer than the window: HF 5.x keeps |q-k| <= w, we (official Flax) keep |q-k| <= w-1.

    With equal windows the logits differ; giving our encoder a window of w+1 reproduces HF exactly.
    """
    name, model, config, params = pair
    if name != "balanced":
        pytest.skip("the window rule is a property of the encoder stack; one pair suffices")
    enc, dec, enc_mask = _inputs(2, s=3 * WINDOW)
    ref = _hf_logits(model, enc, dec, enc_mask)
    differs = max_diff(ref, _ours(params, config, enc, dec, enc_mask))
    hf_rule = config.replace(encoder=config.encoder.replace(sliding_window=WINDOW + 1))
    d = max_diff(ref, _ours(params, hf_rule, enc, dec, enc_mask))
    report(f"t5gemma {name} S=24>w, our encoder window w+1 (plain w differs by {differs:.1e})", d)
    assert differs > 1e-3
    assert d <= TOL


def test_decoder_shift_and_loss_match_hf_labels(pair):
    """HF builds decoder inputs from `labels` by shifting right with config.decoder.bos_token_id (= 2)."""
    name, model, config, params = pair
    assert model.config.decoder.bos_token_id == 2
    enc, targets, enc_mask = _inputs(3)
    with torch.no_grad():
        out = model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc_mask),
                    labels=torch.tensor(targets))
    dec_in = np.asarray(masks.shift_right(jnp.asarray(targets), start_id=2))
    assert (dec_in == model.prepare_decoder_input_ids_from_labels(torch.tensor(targets)).numpy()).all()
    logits = _ours(params, config, enc, dec_in, enc_mask)
    logp = jax.nn.log_softmax(logits, axis=-1)
    ours = -float(jnp.mean(jnp.take_along_axis(logp, jnp.asarray(targets)[..., None], axis=-1)))
    assert max_diff(out.logits.numpy(), logits) <= TOL
    assert abs(ours - float(out.loss)) <= 1e-5, (ours, float(out.loss))


def test_greedy_generation_matches_hf(pair):
    name, model, config, params = pair
    if name != "unbalanced":
        pytest.skip("one pair suffices (unbalanced: cross-attention K/V read the wider encoder)")
    enc, _, enc_mask = _inputs(4)
    new = 12
    with torch.no_grad():
        ref = model.generate(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc_mask),
                             max_new_tokens=new, do_sample=False).numpy()
    assert (ref[:, 0] == 2).all()  # HF starts the decoder from BOS (decoder_start_token_id = bos_token_id)
    ours = np.asarray(generate.generate(params, config, jnp.asarray(enc), new, jnp.asarray(enc_mask)))
    for r, o in zip(ref[:, 1:], ours, strict=True):
        assert until_eos(r) == until_eos(o)
