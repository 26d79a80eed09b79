"""Encoder-decoder parity with transformers' T5Gemma2ForConditionalGeneration (eager attention, fp32).

Text only; the tiny balanced pair 'tiny3-tiny3' (tied embeddings, merged attention) with an eoi token inside
the vocabulary on both stacks, present in encoder and decoder inputs. Encoder inputs (24) are longer than
the window (8), so local encoder layers exercise the two-sided 'split' window rule. Encoder padding is on the
right: transformers' T5Gemma 2 encoder positions are arange(S), ours cumsum(mask) - 1; the two agree on every
real token of a right-padded row (padded positions are masked as keys, and their own outputs are ignored).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from _interop_helpers import (
    TOL,
    WINDOW,
    assert_params_equal,
    encdec_forward,
    max_diff,
    random_params,
    randomize_,
    report,
    tokens,
    until_eos,
)

from workbench import encdec, generate, objectives
from workbench.config import encdec_preset
from workbench.interop import CheckpointError, load_hf_t5gemma2, read_safetensors, save_hf_t5gemma2, write_safetensors

B, S, T, V, EOI = 2, 3 * WINDOW, 10, 512, 5
TEXT = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW)
# A vision tower other than the one we write (1 layer, pooling head): loading must ignore whatever is there.
HF_VISION = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, num_channels=3,
                 image_size=4, patch_size=2)


def t5gemma2_model(seed: int = 1, eoi: int = EOI) -> transformers.T5Gemma2ForConditionalGeneration:
    cfg = transformers.T5Gemma2Config(
        encoder=dict(text_config=dict(TEXT), vision_config=dict(HF_VISION), mm_tokens_per_image=4,
                     eoi_token_index=eoi), decoder=dict(TEXT), attn_implementation="eager")
    return randomize_(transformers.T5Gemma2ForConditionalGeneration(cfg).eval(), seed)


def expected_config(eoi: int | None = EOI):
    c = encdec_preset("tiny3-tiny3")
    return c.replace(encoder=c.encoder.replace(eoi_token_id=eoi), decoder=c.decoder.replace(eoi_token_id=eoi))


@pytest.fixture(scope="module")
def hf_and_ours(tmp_path_factory):
    model = t5gemma2_model()
    path = tmp_path_factory.mktemp("t5gemma2")
    model.save_pretrained(path)
    config, params = load_hf_t5gemma2(path)
    return model, config, params, path


def _inputs(seed: int):
    enc, dec = tokens(seed, (B, S), V), tokens(seed + 100, (B, T), V)
    enc[:, 3], dec[:, 4] = EOI, EOI  # the eoi token gets its own (unscaled) embedding on both stacks
    enc_mask = np.ones_like(enc)
    enc_mask[1, -3:] = 0  # right padding (positions: see the module docstring)
    return np.where(enc_mask == 1, enc, 0), dec, enc_mask


def _hf_logits(model, enc, dec, enc_mask):
    with torch.no_grad():
        return model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc_mask),
                     decoder_input_ids=torch.tensor(dec)).logits.numpy()


def _ours(params, config, enc, dec, enc_mask):
    return encdec_forward(params, config, jnp.asarray(enc, jnp.int32), jnp.asarray(dec, jnp.int32),
                          jnp.asarray(enc_mask, bool), jnp.ones(dec.shape, bool))


def _copy(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _clean(info) -> bool:
    return not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))


def test_hf_saved_model_loads_with_equal_logits(hf_and_ours):
    model, config, params, _ = hf_and_ours
    assert config == expected_config()
    assert np.abs(np.asarray(params["decoder"]["embedder"]["eoi_embedding"])).max() > 0
    enc, dec, enc_mask = _inputs(0)
    d = max_diff(_hf_logits(model, enc, dec, enc_mask), _ours(params, config, enc, dec, enc_mask))
    report("t5gemma2 tiny3-tiny3 HF->ours S=24>w, eoi, right-padded encoder", d)
    assert d <= TOL


def test_encoder_window_is_the_split_rule(hf_and_ours):
    """The same model with our 'symmetric' encoder window differs from HF: the window is really exercised."""
    model, config, params, _ = hf_and_ours
    enc, dec, enc_mask = _inputs(0)
    symmetric = config.replace(encoder=config.encoder.replace(window_rule="symmetric"))
    differs = max_diff(_hf_logits(model, enc, dec, enc_mask), _ours(params, symmetric, enc, dec, enc_mask))
    print(f"PARITY t5gemma2 window-rule check: a 'symmetric' encoder window differs from HF by {differs:.1e} "
          "(must exceed 1e-2; 'split' matches)")
    assert differs > 1e-2


def test_our_model_saved_loads_in_hf_with_equal_logits(hf_and_ours, tmp_path):
    _, config, loaded, _ = hf_and_ours
    rng = np.random.RandomState(7)
    params = jax.tree.map(lambda x: np.asarray(x) * (1 + 0.2 * rng.standard_normal(x.shape)).astype(np.float32)
                          + 0.05 * rng.standard_normal(x.shape).astype(np.float32), loaded)
    save_hf_t5gemma2(config, params, tmp_path)
    model, info = transformers.T5Gemma2ForConditionalGeneration.from_pretrained(
        tmp_path, attn_implementation="eager", output_loading_info=True)
    assert _clean(info), info
    assert model.config.eoi_token_index == EOI
    vision = {n: p for n, p in model.named_parameters() if ".vision_tower." in n or ".multi_modal_projector." in n}
    assert sum(p.numel() for p in vision.values()) == config.decoder.embed_dim + 6
    assert all(not p.any() for p in vision.values())  # zero weights, never read by the text path
    with torch.no_grad():  # the vision path still runs: a 1x1 image becomes one zero soft token
        image = model.get_image_features(torch.zeros(1, 1, 1, 1)).pooler_output
    assert image.shape == (1, 1, config.decoder.embed_dim) and not image.any()
    np.testing.assert_array_equal(model.model.decoder.embed_tokens.eoi_embedding.detach().numpy(),
                                  params["decoder"]["embedder"]["eoi_embedding"])
    enc, dec, enc_mask = _inputs(1)
    d = max_diff(_hf_logits(model.eval(), enc, dec, enc_mask), _ours(params, config, enc, dec, enc_mask))
    report("t5gemma2 tiny3-tiny3 ours->HF", d)
    assert d <= TOL


def test_seq2seq_loss_matches_hf_labels(hf_and_ours):
    """objectives.encdec_seq2seq_loss (pad 0 ignored) against HF's `labels=` loss (-100 ignored)."""
    model, config, params, _ = hf_and_ours
    enc, targets, enc_mask = _inputs(3)
    targets[0, -2:] = 0  # padded targets: not predicted
    labels = np.where(targets == 0, -100, targets)
    with torch.no_grad():
        ref = float(model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc_mask),
                          labels=torch.tensor(labels)).loss)
    loss, _ = jax.jit(objectives.encdec_seq2seq_loss(config))(params, {"inputs": jnp.asarray(enc, jnp.int32),
                                                                     "targets": jnp.asarray(targets, jnp.int32)})
    print(f"PARITY t5gemma2 seq2seq loss vs HF labels=: |dloss| = {abs(float(loss) - ref):.2e}")
    assert abs(float(loss) - ref) <= 1e-5, (float(loss), ref)


def test_greedy_generation_matches_hf(hf_and_ours):
    """Embeddings x0.1 on both sides keep the random model from repeating one token throughout."""
    model, config, params, _ = hf_and_ours
    model = t5gemma2_model()  # a fresh copy (equal weights) to scale
    with torch.no_grad():
        model.model.encoder.text_model.embed_tokens.weight.mul_(0.1)
    dec_params = {**params["decoder"], "embedder": {**params["decoder"]["embedder"],
                                                    "embedding": params["decoder"]["embedder"]["embedding"] * 0.1}}
    params = {**params, "decoder": dec_params}
    enc, _, enc_mask = _inputs(4)
    new = 12
    with torch.no_grad():
        ref = model.generate(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc_mask),
                             max_new_tokens=new, do_sample=False).numpy()
    assert (ref[:, 0] == 2).all()  # HF starts the decoder from BOS
    ours = np.asarray(generate.generate(params, config, jnp.asarray(enc), new, jnp.asarray(enc_mask)))
    assert any(len({int(t) for t in row}) > 1 for row in ref[:, 1:])
    for r, o in zip(ref[:, 1:], ours, strict=True):
        assert until_eos(r) == until_eos(o)


def test_round_trip_is_exact(tmp_path):
    config = expected_config()
    params = random_params(config)
    save_hf_t5gemma2(config, params, tmp_path / "ckpt", max_shard_bytes=100_000)
    loaded_config, loaded = load_hf_t5gemma2(tmp_path / "ckpt")
    assert loaded_config == config
    assert_params_equal(params, loaded)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_no_eoi_saves_index_vocab_size_with_zero_vector_and_loads_back_none(tmp_path):
    config = expected_config(None)
    assert config.decoder.eoi_token_id is None
    params = random_params(config)
    save_hf_t5gemma2(config, params, tmp_path)
    hf_cfg = json.loads((tmp_path / "config.json").read_text())
    assert hf_cfg["eoi_token_index"] == hf_cfg["encoder"]["eoi_token_index"] == V
    model, info = transformers.T5Gemma2ForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert _clean(info), info
    assert not model.model.encoder.text_model.embed_tokens.eoi_embedding.any()
    loaded_config, loaded = load_hf_t5gemma2(tmp_path)
    assert loaded_config == config
    assert_params_equal(params, loaded)
    tensors = read_safetensors(tmp_path / "model.safetensors")
    tensors["model.encoder.embed_tokens.eoi_embedding"][0] = 1.0  # would be silently dropped: refused
    write_safetensors(tensors, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="eoi_embedding"):
        load_hf_t5gemma2(tmp_path)


def test_module_named_keys_load_too(hf_and_ours, tmp_path):
    """`model.encoder.text_model.*` (the module names) is read as well as transformers' written form."""
    _, config, params, path = hf_and_ours
    d = _copy(path, tmp_path / "renamed")
    tensors = read_safetensors(d / "model.safetensors")
    renamed = {k.replace("model.encoder.", "model.encoder.text_model.")
               if k.startswith(("model.encoder.layers.", "model.encoder.embed_tokens.", "model.encoder.norm."))
               else k: v for k, v in tensors.items()}
    write_safetensors(renamed, d / "model.safetensors")
    assert_params_equal(params, load_hf_t5gemma2(d)[1])


def test_missing_vision_weights_and_text_keys_are_all_named(hf_and_ours, tmp_path):
    _, _, _, path = hf_and_ours
    d = _copy(path, tmp_path / "bad")
    tensors = read_safetensors(d / "model.safetensors")
    tensors = {k: v for k, v in tensors.items() if not k.startswith("model.encoder.vision_tower.")}
    del tensors["model.encoder.multi_modal_projector.mm_input_projection_weight"]
    del tensors["model.decoder.layers.3.self_attn.k_norm.weight"]
    write_safetensors(tensors, d / "model.safetensors")
    with pytest.raises(CheckpointError) as e:
        load_hf_t5gemma2(d)
    for key in ("model.encoder.vision_tower.", "mm_input_projection_weight",
                "model.decoder.layers.3.self_attn.k_norm.weight"):
        assert key in str(e.value), str(e.value)


def test_unsupported_config_fields_are_all_named(hf_and_ours, tmp_path):
    _, _, _, path = hf_and_ours
    d = _copy(path, tmp_path / "bad")
    cfg = json.loads((d / "config.json").read_text())
    cfg["decoder"]["attn_logit_softcapping"] = 50.0
    cfg["encoder"]["text_config"]["hidden_activation"] = "relu"
    cfg["encoder"]["text_config"]["hidden_size"] = 96
    cfg["attention_dropout"] = 0.1
    cfg["mystery"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_hf_t5gemma2(d)
    for field in ("decoder.attn_logit_softcapping", "encoder.text_config.hidden_activation",
                  "encoder.text_config.hidden_size=96 != decoder.hidden_size=64", "attention_dropout", "mystery"):
        assert field in str(e.value), str(e.value)


def test_unbalanced_pair_runs_but_export_is_refused(tmp_path):
    config = encdec_preset("tiny3-large-tiny3")
    assert config.merged_attention and not config.merged_shared_kv and not config.tie_embeddings
    params = encdec.init(config, jax.random.key(0))
    enc, dec, enc_mask = _inputs(5)
    logits = encdec.forward(params, config, jnp.asarray(enc), jnp.asarray(dec), jnp.asarray(enc_mask, bool))
    assert logits.shape == (B, T, V) and bool(jnp.isfinite(logits).all())
    with pytest.raises(CheckpointError) as e:
        save_hf_t5gemma2(config, params, tmp_path / "out")
    for text in ("encoder.embed_dim=96 != decoder.embed_dim=64", "equal widths", "tie_embeddings=False"):
        assert text in str(e.value), str(e.value)
    with pytest.raises(CheckpointError, match="needs merged attention"):
        save_hf_t5gemma2(expected_config().replace(merged_attention=False), {}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
