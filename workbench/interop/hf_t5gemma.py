"""Hugging Face T5Gemma (`T5GemmaForConditionalGeneration`) checkpoints <-> workbench encoder-decoder params.

HF key                                                          -> our path
  model.encoder.embed_tokens.weight                                encoder/embedder/embedding
  model.{encoder,decoder}.layers.{i}.pre_self_attn_layernorm        {stack}/layer_i/pre_attention_norm/scale
  model.{encoder,decoder}.layers.{i}.self_attn.{q,k,v,o}_proj (T)   {stack}/layer_i/attn/{q,k,v,o}_proj/kernel
  model.{encoder,decoder}.layers.{i}.post_self_attn_layernorm       {stack}/layer_i/post_attention_norm/scale
  model.decoder.layers.{i}.pre_cross_attn_layernorm                 decoder/layer_i/pre_cross_attn_norm/scale
  model.decoder.layers.{i}.cross_attn.{q,k,v,o}_proj (T)            decoder/layer_i/cross_attn/{q,k,v,o}_proj/kernel
  model.decoder.layers.{i}.post_cross_attn_layernorm                decoder/layer_i/post_cross_attn_norm/scale
  model.{encoder,decoder}.layers.{i}.{pre,post}_feedforward_layernorm {stack}/layer_i/{pre,post}_ffw_norm/scale
  model.{encoder,decoder}.layers.{i}.mlp.{gate,up,down}_proj (T)    {stack}/layer_i/mlp/*/kernel
  model.{encoder,decoder}.norm.weight                               {stack}/final_norm/scale
  lm_head.out_proj.weight (optional; tied to model.decoder.embed_tokens.weight)
Unbalanced pairs: HF `decoder.cross_attention_hidden_size` = encoder hidden size (cross-attn k/v in-width).
HF has no encoder/decoder embedding tying: with `EncDecConfig.tie_embeddings` the decoder table is written
for both, and loading with `tie_embeddings=True` requires the two tables to be equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax

from workbench import encdec
from workbench.config import EncDecConfig
from workbench.interop import params_map as pm
from workbench.interop.errors import CheckpointError
from workbench.interop.hf_gemma2 import GENERATION_CONFIG, stack_config_from_hf, stack_config_to_hf
from workbench.interop.safetensors_io import write_checkpoint_dir

NORMS = {"pre_attention_norm": "pre_self_attn_layernorm", "post_attention_norm": "post_self_attn_layernorm",
         "pre_cross_attn_norm": "pre_cross_attn_layernorm", "post_cross_attn_norm": "post_cross_attn_layernorm",
         "pre_ffw_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm"}
ENC_EMBED, DEC_EMBED = "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"


def _to_hf_key(path: pm.Path_) -> tuple[str, bool]:
    if path[0] not in ("encoder", "decoder"):
        raise CheckpointError(f"parameter {'/'.join(path)} has no Hugging Face counterpart")
    return pm.stack_to_hf(path[1:], f"model.{path[0]}.", NORMS)


def t5gemma_config_from_hf(d: dict[str, Any], *, dtype: str = "float32", param_dtype: str = "float32",
                           tie_embeddings: bool = False) -> EncDecConfig:
    """EncDecConfig from a T5GemmaForConditionalGeneration config.json dict."""
    problems = []
    if d.get("model_type", "t5gemma") != "t5gemma":
        problems.append(f"model_type={d['model_type']!r} (expected 't5gemma')")
    if d.get("is_encoder_decoder") is False:
        problems.append("is_encoder_decoder=false (encoder-only T5Gemma is unsupported here)")
    if d.get("tie_word_embeddings") is False:
        problems.append("tie_word_embeddings=false (the LM head must be tied to the decoder embedding)")
    enc_d = d.get("encoder") or {}
    dec_d = d.get("decoder") or enc_d
    cross = dec_d.get("cross_attention_hidden_size")
    if cross is not None and cross != enc_d.get("hidden_size", cross):
        problems.append(f"decoder.cross_attention_hidden_size={cross} != encoder.hidden_size="
                        f"{enc_d.get('hidden_size')}")
    kw = dict(dtype=dtype, param_dtype=param_dtype, dropout_rate=float(d.get("dropout_rate", 0.0)))
    stacks = {}
    for name, sub in (("encoder", enc_d), ("decoder", dec_d)):
        try:
            stacks[name] = stack_config_from_hf(sub, f"{name}.", **kw)
        except CheckpointError as e:  # collect both stacks' problems into one error
            problems.append(str(e).removeprefix("unsupported config fields: "))
    if problems:
        raise CheckpointError("unsupported config fields: " + "; ".join(problems))
    try:
        return EncDecConfig(**stacks, tie_embeddings=tie_embeddings)
    except ValueError as e:
        raise CheckpointError(f"invalid config: {e}") from e


def to_hf_t5gemma_config(config: EncDecConfig, dtype: str = "float32") -> dict[str, Any]:
    """config.json contents for `transformers.T5GemmaForConditionalGeneration`."""
    if config.encoder.dropout_rate != config.decoder.dropout_rate:
        raise CheckpointError("encoder.dropout_rate != decoder.dropout_rate: HF T5Gemma has one dropout_rate")
    enc = {**stack_config_to_hf(config.encoder), "model_type": "t5_gemma_module", "is_decoder": False,
           "dropout_rate": config.encoder.dropout_rate}
    dec = {**stack_config_to_hf(config.decoder), "model_type": "t5_gemma_module", "is_decoder": True,
           "dropout_rate": config.decoder.dropout_rate, "cross_attention_hidden_size": config.encoder.embed_dim}
    return {"architectures": ["T5GemmaForConditionalGeneration"], "model_type": "t5gemma", "dtype": dtype,
            "encoder": enc, "decoder": dec, "is_encoder_decoder": True, "tie_word_embeddings": True,
            "dropout_rate": config.decoder.dropout_rate, "attention_dropout": 0.0, "classifier_dropout_rate": 0.0,
            "vocab_size": config.decoder.vocab_size, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
            "use_cache": True}


def load_hf_t5gemma(path: str | Path, *, param_dtype: str = "float32", dtype: str = "float32",
                    tie_embeddings: bool = False) -> tuple[EncDecConfig, dict[str, Any]]:
    """Read an HF T5Gemma checkpoint directory -> (EncDecConfig, params); mismatches raise CheckpointError.

    `tie_embeddings=True` loads into a tied config (the two HF embedding tables must then be equal).
    """
    config = t5gemma_config_from_hf(pm.read_config_json(path), dtype=dtype, param_dtype=param_dtype,
                                    tie_embeddings=tie_embeddings)
    shapes = pm.expected_shapes(lambda: encdec.init(config, jax.random.key(0)))
    tied = {"lm_head.out_proj.weight": DEC_EMBED}
    if tie_embeddings:
        tied[ENC_EMBED] = DEC_EMBED
    return config, pm.load_params(path, shapes, _to_hf_key, tied, param_dtype)


def save_hf_t5gemma(config: EncDecConfig, params: dict[str, Any], path: str | Path, *, dtype: str | None = None,
                    max_shard_bytes: int | None = None) -> None:
    """Write config.json + safetensors loadable by `T5GemmaForConditionalGeneration` (atomic write).

    Unbalanced pairs are written with `decoder.cross_attention_hidden_size` = encoder width. `dtype`
    converts the weights (default: keep). The tied LM head is not written.
    """
    hf_config = to_hf_t5gemma_config(config, "float32")
    shapes = pm.expected_shapes(lambda: encdec.init(config, jax.random.key(0)))
    tensors = pm.params_to_tensors(params, shapes, _to_hf_key, dtype)
    if config.tie_embeddings:
        tensors[ENC_EMBED] = tensors[DEC_EMBED]
    hf_config["dtype"] = dtype or pm.dtype_name(params)
    write_checkpoint_dir(path, tensors, {"config.json": hf_config,
                                         "generation_config.json": {**GENERATION_CONFIG,
                                                                    "decoder_start_token_id": 2}},
                         max_shard_bytes)
