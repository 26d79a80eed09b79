"""Round trips (save -> load -> equal), sharded checkpoints, bfloat16, and error reporting."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
import torch
import transformers
from _interop_helpers import SMALL, WIDE, assert_params_equal, gemma2_model, random_params, t5gemma_model

from workbench.config import EncDecConfig, GemmaConfig
from workbench.interop import (
    CheckpointError,
    load_hf_gemma2,
    load_hf_t5gemma,
    read_safetensors,
    save_hf_gemma2,
    save_hf_t5gemma,
    write_safetensors,
)

TINY = GemmaConfig(vocab_size=64, num_layers=2, embed_dim=32, hidden_dim=48, num_heads=4, head_dim=8,
                   num_kv_heads=2, query_pre_attn_scalar=8, sliding_window=4)


@pytest.fixture(scope="module")
def hf_gemma2_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("g2")
    gemma2_model(seed=5, num_hidden_layers=2).save_pretrained(path)
    return path


def test_gemma2_round_trip_is_exact(tmp_path):
    params = random_params(TINY)
    save_hf_gemma2(TINY, params, tmp_path / "ckpt")
    config, loaded = load_hf_gemma2(tmp_path / "ckpt")
    assert config == TINY
    assert_params_equal(params, loaded)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


@pytest.mark.parametrize("tie", [False, True])
def test_t5gemma_round_trip_is_exact_balanced_unbalanced_tied(tmp_path, tie):
    enc = TINY.replace(num_layers=3, embed_dim=32 if tie else 48, hidden_dim=64)
    config = EncDecConfig(encoder=enc, decoder=TINY, tie_embeddings=tie)
    params = random_params(config)
    save_hf_t5gemma(config, params, tmp_path)
    loaded_config, loaded = load_hf_t5gemma(tmp_path, tie_embeddings=tie)
    assert loaded_config == config
    assert_params_equal(params, loaded)
    hf = transformers.T5GemmaForConditionalGeneration.from_pretrained(tmp_path)
    assert hf.config.decoder.cross_attention_hidden_size == enc.embed_dim
    q = hf.model.decoder.layers[0].cross_attn.k_proj.weight.detach().numpy()
    np.testing.assert_array_equal(q, params["decoder"]["layer_0"]["cross_attn"]["k_proj"]["kernel"].T)


def test_sharded_checkpoint_written_by_hand_loads(hf_gemma2_dir, tmp_path):
    tensors = read_safetensors(hf_gemma2_dir / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for fname, keys in shards.items():
        write_safetensors({k: tensors[k] for k in keys}, tmp_path / fname)
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text((hf_gemma2_dir / "config.json").read_text())
    assert_params_equal(load_hf_gemma2(tmp_path)[1], load_hf_gemma2(hf_gemma2_dir)[1])


def test_sharded_save_loads_in_hf_and_back(tmp_path):
    params = random_params(TINY)
    save_hf_gemma2(TINY, params, tmp_path, max_shard_bytes=20_000)
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) >= 2
    hf, info = transformers.Gemma2ForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    np.testing.assert_array_equal(hf.model.layers[1].mlp.down_proj.weight.detach().numpy(),
                                  params["layer_1"]["mlp"]["down_proj"]["kernel"].T)
    assert_params_equal(params, load_hf_gemma2(tmp_path)[1])
    save_hf_gemma2(TINY, params, tmp_path)  # re-save unsharded into the same directory: stale shards go
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["model.safetensors"]
    assert not (tmp_path / "model.safetensors.index.json").exists()


def test_bfloat16_checkpoints(hf_gemma2_dir, tmp_path):
    hf = transformers.Gemma2ForCausalLM.from_pretrained(hf_gemma2_dir).to(torch.bfloat16)
    hf.save_pretrained(tmp_path / "hf_bf16")
    config, params = load_hf_gemma2(tmp_path / "hf_bf16", param_dtype="bfloat16")
    assert config.param_dtype == "bfloat16"
    emb = params["embedder"]["embedding"]
    assert emb.dtype == jax.numpy.bfloat16
    ref = hf.model.embed_tokens.weight.detach().float().numpy()
    np.testing.assert_array_equal(np.asarray(emb, np.float32), ref)
    save_hf_gemma2(config, params, tmp_path / "ours_bf16")
    back = transformers.Gemma2ForCausalLM.from_pretrained(tmp_path / "ours_bf16")
    assert back.model.embed_tokens.weight.dtype == torch.bfloat16
    np.testing.assert_array_equal(back.model.embed_tokens.weight.detach().float().numpy(), ref)
    _, f32 = load_hf_gemma2(tmp_path / "ours_bf16")  # default: upcast to float32
    assert f32["final_norm"]["scale"].dtype == jax.numpy.float32


def _edit_tensors(directory, edit):
    path = directory / "model.safetensors"
    tensors = read_safetensors(path)
    edit(tensors)
    write_safetensors(tensors, path)


def _copy(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_missing_unexpected_and_misshaped_keys_are_all_named(hf_gemma2_dir, tmp_path):
    d = _copy(hf_gemma2_dir, tmp_path / "bad")

    def edit(t):
        del t["model.layers.1.mlp.up_proj.weight"]
        del t["model.norm.weight"]
        t["model.layers.0.self_attn.q_proj.bias"] = np.zeros(64, np.float32)
        t["model.layers.0.self_attn.k_proj.weight"] = np.zeros((16, 64), np.float32)

    _edit_tensors(d, edit)
    with pytest.raises(CheckpointError) as e:
        load_hf_gemma2(d)
    msg = str(e.value)
    for key in ("model.layers.1.mlp.up_proj.weight", "model.norm.weight", "model.layers.0.self_attn.q_proj.bias",
                "model.layers.0.self_attn.k_proj.weight: expected [32, 64], found [16, 64]"):
        assert key in msg, msg


def test_untied_lm_head_is_rejected(hf_gemma2_dir, tmp_path):
    d = _copy(hf_gemma2_dir, tmp_path / "bad")
    _edit_tensors(d, lambda t: t.__setitem__("lm_head.weight", t["model.embed_tokens.weight"] + 1))
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        load_hf_gemma2(d)
    _edit_tensors(d, lambda t: t.__setitem__("lm_head.weight", t["model.embed_tokens.weight"]))
    load_hf_gemma2(d)  # an explicit, equal lm_head is fine


def test_unsupported_config_fields_are_all_named(hf_gemma2_dir, tmp_path):
    d = _copy(hf_gemma2_dir, tmp_path / "bad")
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(hidden_activation="gelu", attention_bias=True, rope_scaling={"rope_type": "linear", "factor": 2.0},
               layer_types=["sliding_attention", "chunked_attention"])
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_hf_gemma2(d)
    for field in ("hidden_activation", "attention_bias", "rope_scaling", "layer_types"):
        assert field in str(e.value), str(e.value)


def test_truncated_or_corrupt_file_names_the_file(hf_gemma2_dir, tmp_path):
    d = _copy(hf_gemma2_dir, tmp_path / "bad")
    path = d / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated"):
        load_hf_gemma2(d)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_hf_gemma2(d)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        load_hf_gemma2(d)


def test_t5gemma_errors_name_keys_and_fields(tmp_path):
    enc, dec = {**SMALL, "num_hidden_layers": 1}, {**WIDE, "num_hidden_layers": 1}
    t5gemma_model(enc, dec).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["decoder"]["hidden_activation"] = "relu"
    cfg["encoder"]["attention_bias"] = True
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_hf_t5gemma(tmp_path)
    assert "decoder.hidden_activation" in str(e.value) and "encoder.attention_bias" in str(e.value)
    cfg["decoder"]["hidden_activation"] = "gelu_pytorch_tanh"
    cfg["encoder"]["attention_bias"] = False
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    _edit_tensors(tmp_path, lambda t: t.pop("model.decoder.layers.0.cross_attn.v_proj.weight"))
    with pytest.raises(CheckpointError, match="model.decoder.layers.0.cross_attn.v_proj.weight"):
        load_hf_t5gemma(tmp_path)


def test_saving_a_mismatched_tree_names_every_path_and_writes_nothing(tmp_path):
    params = random_params(TINY)
    del params["layer_1"]["mlp"]["gate_proj"]
    params["layer_0"]["attn"]["q_proj"]["kernel"] = np.zeros((3, 3), np.float32)
    params["extra"] = {"w": np.zeros(2, np.float32)}
    with pytest.raises(CheckpointError) as e:
        save_hf_gemma2(TINY, params, tmp_path / "out")
    for p in ("layer_1/mlp/gate_proj/kernel", "layer_0/attn/q_proj/kernel", "extra/w"):
        assert p in str(e.value)
    assert os.listdir(tmp_path) == []
