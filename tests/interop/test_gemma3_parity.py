"""Decoder-only parity with transformers' Gemma3ForCausalLM (eager attention, fp32), round trips and errors.

Two tiny configs ('tiny3': 5 local + 1 global layer, window 8): transformers' default RoPE bases, and linear
scaling 8 on the global layer with another local base. Sequences (24) are longer than the window.
"""

from __future__ import annotations

import copy
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
    decoder_forward,
    max_diff,
    positions,
    random_params,
    randomize_,
    report,
    tokens,
    until_eos,
)

from workbench import generate
from workbench.config import decoder_preset
from workbench.interop import CheckpointError, load_hf_gemma3, read_safetensors, save_hf_gemma3, write_safetensors

B, L, V = 3, 3 * WINDOW, 512  # longer than the sliding window; one shape for all tests (one compilation each)
TINY3 = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW)
LINEAR8 = {"sliding_attention": {"rope_type": "default", "rope_theta": 20_000.0},
           "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0}}
# variant -> (extra HF config fields, the `decoder_preset('tiny3', ...)` overrides they must load as)
VARIANTS = {"default-rope": ({}, {}),
            "linear8-local20k": ({"rope_parameters": LINEAR8}, {"local_rope_theta": 20_000.0,
                                                                 "rope_scaling_factor": 8.0})}


def gemma3_model(seed: int = 0, **kw) -> transformers.Gemma3ForCausalLM:
    cfg = transformers.Gemma3TextConfig(**{**TINY3, **kw}, attn_implementation="eager")
    return randomize_(transformers.Gemma3ForCausalLM(cfg).eval(), seed)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def hf_and_ours(request, tmp_path_factory):
    hf_kw, ours_kw = VARIANTS[request.param]
    model = gemma3_model(seed=0, **copy.deepcopy(hf_kw))
    path = tmp_path_factory.mktemp(f"gemma3-{request.param}")
    model.save_pretrained(path)
    config, params = load_hf_gemma3(path)
    assert config == decoder_preset("tiny3", **ours_kw)
    return request.param, model, config, params, path


def _padded_inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    toks = tokens(seed, (B, L), V)
    mask = np.ones_like(toks)
    mask[0, :5] = 0  # left padding
    mask[1, -7:] = 0  # right padding; row 2 is unpadded
    return np.where(mask == 1, toks, 0), mask


def _hf_logits(model, toks, mask):
    with torch.no_grad():
        return model(torch.tensor(toks), attention_mask=torch.tensor(mask),
                     position_ids=torch.tensor(positions(mask))).logits.numpy()


def _our_logits(params, config, toks, mask):
    return decoder_forward(params, config, jnp.asarray(toks, jnp.int32), jnp.asarray(mask, bool))


def _perturbed(params, seed: int = 7):
    """New weights of our own (nothing left over from the HF model), same shapes."""
    rng = np.random.RandomState(seed)
    return jax.tree.map(lambda x: np.asarray(x) * (1 + 0.2 * rng.standard_normal(x.shape)).astype(np.float32)
                        + 0.05 * rng.standard_normal(x.shape).astype(np.float32), params)


def test_hf_saved_model_loads_with_equal_logits_left_and_right_padding(hf_and_ours):
    name, model, config, params, _ = hf_and_ours
    toks, mask = _padded_inputs(1)
    d = max_diff(_hf_logits(model, toks, mask), _our_logits(params, config, toks, mask), mask)
    report(f"gemma3 {name} HF->ours L=24 w=8 left/right padded", d)
    assert d <= TOL


def test_our_model_saved_loads_in_hf_with_equal_logits(hf_and_ours, tmp_path):
    name, _, config, loaded, _ = hf_and_ours
    params = _perturbed(loaded)
    save_hf_gemma3(config, params, tmp_path)
    model, info = transformers.Gemma3ForCausalLM.from_pretrained(tmp_path, attn_implementation="eager",
                                                                 output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    rope = model.config.rope_parameters
    assert rope["full_attention"].get("factor", 1.0) == config.rope_scaling_factor
    assert rope["sliding_attention"]["rope_theta"] == config.local_rope_theta
    toks, mask = _padded_inputs(2)
    d = max_diff(_hf_logits(model.eval(), toks, mask), _our_logits(params, config, toks, mask), mask)
    report(f"gemma3 {name} ours->HF left/right padded", d)
    assert d <= TOL


def test_greedy_generation_matches_hf(hf_and_ours):
    """Left-padded batch, prompt 10 + 12 new tokens: past the window. Embeddings x0.1 (both sides) keep the
    random model from repeating one token, so the continuation changes mid-way."""
    name, model, config, params, _ = hf_and_ours
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(0.1)
    params = {**params, "embedder": {"embedding": params["embedder"]["embedding"] * 0.1}}
    prompts = tokens(4, (3, 10), V)
    mask = np.ones_like(prompts)
    mask[1, :4] = 0  # HF needs left padding for batched decoder-only generation
    mask[2, :1] = 0
    prompts = np.where(mask == 1, prompts, 0)
    new = 12
    with torch.no_grad():
        ref = model.generate(torch.tensor(prompts), attention_mask=torch.tensor(mask), max_new_tokens=new,
                             do_sample=False, pad_token_id=0, eos_token_id=1).numpy()[:, prompts.shape[1]:]
    ours = np.asarray(generate.generate(params, config, jnp.asarray(prompts), new, jnp.asarray(mask)))
    assert len({int(t) for t in ref[0]}) > 1  # not a single repeated token
    for r, o in zip(ref, ours, strict=True):
        assert until_eos(r) == until_eos(o)


def test_round_trip_is_exact_and_sharded_bf16_checkpoints_load_in_hf(hf_and_ours, tmp_path):
    _, _, config, _, _ = hf_and_ours
    params = random_params(config)
    save_hf_gemma3(config, params, tmp_path / "one")
    loaded_config, loaded = load_hf_gemma3(tmp_path / "one")
    assert loaded_config == config
    assert_params_equal(params, loaded)
    save_hf_gemma3(config, params, tmp_path / "shards", dtype="bfloat16", max_shard_bytes=60_000)
    assert len(list((tmp_path / "shards").glob("model-*-of-*.safetensors"))) >= 2
    hf, info = transformers.Gemma3ForCausalLM.from_pretrained(tmp_path / "shards", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert hf.model.layers[0].self_attn.q_norm.weight.dtype == torch.bfloat16
    bf16 = np.asarray(params["layer_0"]["attn"]["q_norm"]["scale"], jnp.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(hf.model.layers[0].self_attn.q_norm.weight.detach().float().numpy(), bf16)
    _, back = load_hf_gemma3(tmp_path / "shards", param_dtype="bfloat16")
    np.testing.assert_array_equal(np.asarray(back["layer_0"]["attn"]["q_norm"]["scale"], np.float32), bf16)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_transformers_4x_config_spelling_loads_the_same(hf_and_ours, tmp_path):
    """Hub configs of transformers 4.x: rope_theta / rope_local_base_freq / rope_scaling, no layer_types."""
    name, _, config, params, path = hf_and_ours
    if name != "linear8-local20k":
        pytest.skip("one variant suffices")
    for f in path.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tmp_path / "config.json").read_text())
    for k in ("rope_parameters", "layer_types", "_sliding_window_pattern"):
        del cfg[k]
    cfg.update(rope_theta=1_000_000, rope_local_base_freq=20_000, rope_scaling={"rope_type": "linear", "factor": 8.0},
               sliding_window_pattern=6, torch_dtype="float32", cache_implementation="hybrid")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded_config, loaded = load_hf_gemma3(tmp_path)
    assert loaded_config == config
    assert_params_equal(params, loaded)


def test_unsupported_config_fields_are_all_named(hf_and_ours, tmp_path):
    _, _, _, _, path = hf_and_ours
    for f in path.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(attn_logit_softcapping=50.0, use_bidirectional_attention=True, hidden_activation="gelu",
               attention_bias=True, some_new_option=3, rope_parameters={
                   "sliding_attention": {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4},
                   "full_attention": {"rope_type": "default", "rope_theta": 1e6, "partial_rotary_factor": 0.5}})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_hf_gemma3(tmp_path)
    for field in ("attn_logit_softcapping", "use_bidirectional_attention", "hidden_activation", "attention_bias",
                  "some_new_option", "rope_parameters.sliding_attention", "rope_parameters.full_attention"):
        assert field in str(e.value), str(e.value)


def test_missing_and_misshaped_keys_are_all_named(hf_and_ours, tmp_path):
    _, _, _, _, path = hf_and_ours
    for f in path.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    tensors = read_safetensors(tmp_path / "model.safetensors")
    del tensors["model.layers.2.self_attn.q_norm.weight"]
    tensors["model.layers.5.self_attn.k_norm.weight"] = np.zeros(8, np.float32)
    write_safetensors(tensors, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as e:
        load_hf_gemma3(tmp_path)
    for key in ("model.layers.2.self_attn.q_norm.weight",
                "model.layers.5.self_attn.k_norm.weight: expected [16], found [8]"):
        assert key in str(e.value), str(e.value)


def test_configs_transformers_cannot_express_are_refused_by_name(tmp_path):
    bad = decoder_preset("tiny").replace(eoi_token_id=5, window_rule="symmetric")  # a Gemma 2 stack
    with pytest.raises(CheckpointError) as e:
        save_hf_gemma3(bad, {}, tmp_path / "out")
    for field in ("arch='gemma2'", "qk_norm=False", "attn_logits_soft_cap=50.0", "window_rule='symmetric'",
                  "eoi_token_id=5"):
        assert field in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()
