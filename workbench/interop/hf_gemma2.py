"""Hugging Face Gemma 2 (`Gemma2ForCausalLM`) checkpoints <-> workbench decoder-only parameters.

HF key (PyTorch Linear weights are [out, in]; ours are [in, out])      -> our path
  model.embed_tokens.weight                                              embedder/embedding
  model.layers.{i}.input_layernorm.weight                                layer_i/pre_attention_norm/scale
  model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   (transposed)        layer_i/attn/{q,k,v,o}_proj/kernel
  model.layers.{i}.post_attention_layernorm.weight                       layer_i/post_attention_norm/scale
  model.layers.{i}.pre_feedforward_layernorm.weight                      layer_i/pre_ffw_norm/scale
  model.layers.{i}.mlp.{gate,up,down}_proj.weight    (transposed)        layer_i/mlp/{gate,up,down}_proj/kernel
  model.layers.{i}.post_feedforward_layernorm.weight                     layer_i/post_ffw_norm/scale
  model.norm.weight                                                      final_norm/scale
  lm_head.weight (optional; tied, must equal the embedding)
RMSNorm weights are zero-centred in both (x * (1 + w)), so they copy 1:1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax

from workbench import decoder
from workbench.config import GemmaConfig
from workbench.interop import params_map as pm
from workbench.interop.errors import CheckpointError
from workbench.interop.safetensors_io import write_checkpoint_dir

NORMS = {"pre_attention_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
         "pre_ffw_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm"}
LAYER_TYPES = {"local": "sliding_attention", "global": "full_attention"}
# transformers' class defaults (Gemma2Config / T5GemmaModuleConfig), used for fields absent from config.json.
HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 256, "sliding_window": 4096, "final_logit_softcapping": 30.0,
    "attn_logit_softcapping": 50.0, "rope_theta": 10000.0,
}


GENERATION_CONFIG = {"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0}


def _to_hf_key(path: pm.Path_) -> tuple[str, bool]:
    return pm.stack_to_hf(path, "model.", NORMS)


def stack_config_from_hf(d: dict[str, Any], where: str = "", *, dtype: str = "float32",
                         param_dtype: str = "float32", dropout_rate: float = 0.0) -> GemmaConfig:
    """GemmaConfig from one HF Gemma 2 / T5Gemma-module config dict; unsupported fields raise, all named."""
    problems: list[str] = []
    get = lambda k: d.get(k, HF_DEFAULTS.get(k))  # noqa: E731
    for k in ("hidden_activation", "hidden_act"):
        if d.get(k) not in (None, "gelu_pytorch_tanh"):
            problems.append(f"{where}{k}={d[k]!r} (only 'gelu_pytorch_tanh' is supported)")
    for k in ("attention_bias", "use_bidirectional_attention"):
        if d.get(k):
            problems.append(f"{where}{k}={d[k]!r} (unsupported)")
    if d.get("rope_scaling"):
        problems.append(f"{where}rope_scaling={d['rope_scaling']!r} (RoPE scaling is unsupported)")
    if d.get("partial_rotary_factor", 1.0) != 1.0:
        problems.append(f"{where}partial_rotary_factor={d['partial_rotary_factor']!r} (unsupported)")
    if d.get("tie_word_embeddings") is False:
        problems.append(f"{where}tie_word_embeddings=false (the LM head must be tied to the embedding)")
    theta = d.get("rope_theta", HF_DEFAULTS["rope_theta"])
    rope = d.get("rope_parameters")
    if isinstance(rope, dict):
        per_type = rope if rope and all(isinstance(v, dict) for v in rope.values()) else {"": rope}
        thetas = set()
        for sub in per_type.values():
            extra = sorted(set(sub) - {"rope_type", "rope_theta"})
            if sub.get("rope_type", "default") != "default" or extra:
                problems.append(f"{where}rope_parameters={rope!r} (only default RoPE is supported)")
            thetas.add(sub.get("rope_theta", theta))
        if len(thetas) > 1:
            problems.append(f"{where}rope_parameters={rope!r} (one rope_theta for all layers is supported)")
        theta = thetas.pop() if thetas else theta
    elif rope is not None:
        problems.append(f"{where}rope_parameters={rope!r} (not a dict)")
    n = int(get("num_hidden_layers"))
    types = d.get("layer_types") or ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    inverse = {v: k for k, v in LAYER_TYPES.items()}
    if len(types) != n or any(t not in inverse for t in types):
        problems.append(f"{where}layer_types={types!r} (need {n} entries of sliding_attention/full_attention)")
        types = ["full_attention"] * n
    qpas = get("query_pre_attn_scalar")
    if qpas is None or float(qpas) != int(qpas):
        problems.append(f"{where}query_pre_attn_scalar={qpas!r} (must be an integer)")
        qpas = 1
    if problems:
        raise CheckpointError("unsupported config fields: " + "; ".join(problems))
    pattern = _compress([inverse[t] for t in types])
    try:
        return GemmaConfig(
            vocab_size=int(get("vocab_size")), num_layers=n, embed_dim=int(get("hidden_size")),
            hidden_dim=int(get("intermediate_size")), num_heads=int(get("num_attention_heads")),
            head_dim=int(get("head_dim")), num_kv_heads=int(get("num_key_value_heads")),
            query_pre_attn_scalar=int(qpas), sliding_window=get("sliding_window"),
            attn_logits_soft_cap=_opt_float(get("attn_logit_softcapping")),
            final_logit_soft_cap=_opt_float(get("final_logit_softcapping")), rope_theta=float(theta),
            rms_norm_eps=float(get("rms_norm_eps")), attention_pattern=pattern, dtype=dtype,
            param_dtype=param_dtype, dropout_rate=float(dropout_rate))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"invalid config {where or ''}values: {e}") from e


def stack_config_to_hf(config: GemmaConfig) -> dict[str, Any]:
    """The HF config fields describing one Gemma 2 stack (shared by Gemma2Config and T5GemmaModuleConfig)."""
    types = [LAYER_TYPES[t] if config.sliding_window is not None else "full_attention"
             for t in config.attention_types]
    return {
        "vocab_size": config.vocab_size, "hidden_size": config.embed_dim,
        "intermediate_size": config.hidden_dim, "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads, "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim, "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": int(config.query_pre_attn_scalar), "sliding_window": config.sliding_window,
        "layer_types": types, "attn_logit_softcapping": _opt_float(config.attn_logits_soft_cap),
        "final_logit_softcapping": _opt_float(config.final_logit_soft_cap), "rms_norm_eps": config.rms_norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": float(config.rope_theta)},
        "attention_bias": False, "attention_dropout": 0.0, "max_position_embeddings": 8192,
        "initializer_range": 0.02, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
        "tie_word_embeddings": True, "use_cache": True,
    }


def gemma2_config_from_hf(d: dict[str, Any], *, dtype: str = "float32",
                          param_dtype: str = "float32") -> GemmaConfig:
    """GemmaConfig from a Gemma2ForCausalLM config.json dict."""
    if d.get("model_type", "gemma2") != "gemma2":
        raise CheckpointError(f"unsupported config fields: model_type={d['model_type']!r} (expected 'gemma2')")
    return stack_config_from_hf(d, dtype=dtype, param_dtype=param_dtype)


def to_hf_gemma2_config(config: GemmaConfig, dtype: str = "float32") -> dict[str, Any]:
    """config.json contents for `transformers.Gemma2ForCausalLM`."""
    return {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "dtype": dtype,
            **stack_config_to_hf(config)}


def read_decoder_checkpoint(path: str | Path, config: GemmaConfig, param_dtype: str) -> dict[str, Any]:
    """Params of a decoder-only HF checkpoint (Gemma 2 or Gemma 3 key names) validated against `config`."""
    shapes = pm.expected_shapes(lambda: decoder.init(config, jax.random.key(0)))
    return pm.load_params(path, shapes, _to_hf_key, {"lm_head.weight": "model.embed_tokens.weight"}, param_dtype)


def write_decoder_checkpoint(config: GemmaConfig, params: dict[str, Any], path: str | Path, hf_config: dict[str, Any],
                             dtype: str | None, max_shard_bytes: int | None) -> None:
    """Write a decoder-only HF checkpoint atomically; `hf_config` gets the weights' `dtype`; no tied lm_head."""
    shapes = pm.expected_shapes(lambda: decoder.init(config, jax.random.key(0)))
    tensors = pm.params_to_tensors(params, shapes, _to_hf_key, dtype)
    hf_config = {**hf_config, "dtype": dtype or pm.dtype_name(params)}
    write_checkpoint_dir(path, tensors, {"config.json": hf_config, "generation_config.json": GENERATION_CONFIG},
                         max_shard_bytes)


def load_hf_gemma2(path: str | Path, *, param_dtype: str = "float32",
                   dtype: str = "float32") -> tuple[GemmaConfig, dict[str, Any]]:
    """Read an HF Gemma 2 checkpoint directory (config.json + *.safetensors, sharded or not).

    Returns (config, params) with params cast to `param_dtype`; `dtype` is the activation dtype put in the
    config. Every mismatch (missing / unexpected keys, shapes, unsupported config fields) raises one
    CheckpointError naming each offender; nothing is returned partially.
    """
    config = gemma2_config_from_hf(pm.read_config_json(path), dtype=dtype, param_dtype=param_dtype)
    return config, read_decoder_checkpoint(path, config, param_dtype)


def save_hf_gemma2(config: GemmaConfig, params: dict[str, Any], path: str | Path, *, dtype: str | None = None,
                   max_shard_bytes: int | None = None) -> None:
    """Write config.json + model.safetensors (or shards + index) loadable by `Gemma2ForCausalLM`.

    `dtype` ('float32' / 'bfloat16') converts the weights; default keeps the parameters' dtype. The tied
    `lm_head.weight` is not written (as transformers does). The write is atomic (temp dir + rename).
    """
    write_decoder_checkpoint(config, params, path, to_hf_gemma2_config(config), dtype, max_shard_bytes)


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _compress(types: list[str]) -> tuple[str, ...]:
    """Shortest pattern whose cycle reproduces the per-layer list."""
    for p in range(1, len(types) + 1):
        if all(types[i] == types[i % p] for i in range(len(types))):
            return tuple(types[:p])
    return tuple(types)  # pragma: no cover


