"""Hugging Face Gemma 3 text (`Gemma3ForCausalLM`, model_type 'gemma3_text') <-> workbench decoder-only params.

HF key (PyTorch Linear weights are [out, in]; ours are [in, out])      -> our path
  model.embed_tokens.weight                                              embedder/embedding
  model.layers.{i}.input_layernorm.weight                                layer_i/pre_attention_norm/scale
  model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   (transposed)        layer_i/attn/{q,k,v,o}_proj/kernel
  model.layers.{i}.self_attn.{q,k}_norm.weight       [head_dim]          layer_i/attn/{q,k}_norm/scale
  model.layers.{i}.post_attention_layernorm.weight                       layer_i/post_attention_norm/scale
  model.layers.{i}.{pre,post}_feedforward_layernorm.weight               layer_i/{pre,post}_ffw_norm/scale
  model.layers.{i}.mlp.{gate,up,down}_proj.weight    (transposed)        layer_i/mlp/{gate,up,down}_proj/kernel
  model.norm.weight                                                      final_norm/scale
  lm_head.weight (optional; tied, must equal the embedding)

Config fields: `layer_types` (sliding_attention / full_attention) <-> `attention_pattern` (shortest cycle);
`rope_parameters` = {'sliding_attention': {'rope_type': 'default', 'rope_theta': local_rope_theta},
'full_attention': {'rope_type': 'default' or 'linear', 'rope_theta': rope_theta, 'factor': rope_scaling_factor}};
the transformers 4.x spelling (`rope_theta`, `rope_local_base_freq`, `rope_scaling` on global layers,
`sliding_window_pattern`) is read too. `final_logit_softcapping` maps to `final_logit_soft_cap`. Unsupported
and named: attention soft-capping (transformers' Gemma 3 ignores `attn_logit_softcapping`, so a checkpoint
that sets it is ambiguous), `use_bidirectional_attention`, biases, RoPE types other than default / linear (and
any scaling of local layers), `partial_rotary_factor`, attention dropout, untied LM heads and any field not
listed here. A saved config always spells `local_rope_theta` out (None saves, and loads back, as `rope_theta`).
`load_hf_gemma3` gives the family's stack options (`arch='gemma3'`, QK-norm, `window_rule='split'`);
`save_hf_gemma3` refuses configs transformers cannot express (no QK-norm, attention soft-cap, an eoi
embedding, the 'symmetric' window rule, another family).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.config import GemmaConfig, gemma_config
from workbench.interop import params_map as pm
from workbench.interop.errors import CheckpointError
from workbench.interop.hf_gemma2 import LAYER_TYPES, _compress, read_decoder_checkpoint, write_decoder_checkpoint

# transformers' Gemma3TextConfig defaults, used for fields absent from config.json.
HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 256, "sliding_window": 4096, "final_logit_softcapping": None,
    "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0, "sliding_window_pattern": 6,
}
# Fields read into GemmaConfig (or checked to hold the one value we support).
MAPPED = frozenset({
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_activation", "hidden_act", "query_pre_attn_scalar", "sliding_window",
    "layer_types", "sliding_window_pattern", "_sliding_window_pattern", "final_logit_softcapping",
    "attn_logit_softcapping", "rms_norm_eps", "rope_parameters", "rope_theta", "rope_local_base_freq",
    "rope_scaling", "partial_rotary_factor", "attention_bias", "use_bidirectional_attention", "attention_dropout",
    "tie_word_embeddings", "model_type",
})
# Fields without effect on the forward pass (bookkeeping, generation defaults, transformers' generic fields).
IGNORED = frozenset({
    "architectures", "dtype", "torch_dtype", "transformers_version", "_name_or_path", "max_position_embeddings",
    "initializer_range", "use_cache", "cache_implementation", "pad_token_id", "eos_token_id", "bos_token_id",
    "chunk_size_feed_forward", "id2label", "label2id", "is_encoder_decoder", "output_attentions",
    "output_hidden_states", "problem_type", "return_dict", "_attn_implementation_autoset",
})
INT_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim")


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _positive_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def _rope(d: dict[str, Any], where: str, problems: list[str]) -> tuple[float, float, float]:
    """(global theta, local theta, global linear factor) from `rope_parameters` or the 4.x fields."""
    rope = d.get("rope_parameters")
    if rope is None:
        rope = {}
    elif not isinstance(rope, dict) or set(rope) - {"sliding_attention", "full_attention"}:
        problems.append(f"{where}rope_parameters={rope!r} (need one entry per layer type: sliding_attention, "
                        "full_attention)")
        rope = {}
    full, local = dict(rope.get("full_attention") or {}), dict(rope.get("sliding_attention") or {})
    scaling = d.get("rope_scaling")
    if isinstance(scaling, dict):
        full.update(scaling)  # transformers applies the 4.x `rope_scaling` to global layers only
    elif scaling is not None:
        problems.append(f"{where}rope_scaling={scaling!r} (not a dict)")
    full.setdefault("rope_theta", d.get("rope_theta", HF_DEFAULTS["rope_theta"]))
    local.setdefault("rope_theta", d.get("rope_local_base_freq", HF_DEFAULTS["rope_local_base_freq"]))

    def positive(name: str, value: Any) -> float:
        if not _positive_number(value):
            problems.append(f"{where}rope_parameters.{name}={value!r} (must be a positive number)")
            return 1.0
        return float(value)

    kind = {}
    for name, sub, kinds in (("full_attention", full, ("default", "linear")),
                             ("sliding_attention", local, ("default",))):
        kind[name] = sub.get("rope_type", sub.get("type", "default"))
        extra = set(sub) - {"rope_type", "type", "rope_theta"} - ({"factor"} if kind[name] == "linear" else set())
        if kind[name] not in kinds or extra:
            problems.append(f"{where}rope_parameters.{name}={sub!r} (supported: rope_type "
                            f"{' / '.join(kinds)} with rope_theta{' (and factor)' if len(kinds) > 1 else ''})")
    linear = kind["full_attention"] == "linear"
    factor = positive("full_attention.factor", full.get("factor")) if linear else 1.0
    return (positive("full_attention.rope_theta", full["rope_theta"]),
            positive("sliding_attention.rope_theta", local["rope_theta"]), factor)


def stack_config_from_hf(d: dict[str, Any], where: str = "", *, model_types: tuple[str, ...] = ("gemma3_text",),
                         extra_fields: frozenset[str] = frozenset(), dtype: str = "float32",
                         param_dtype: str = "float32", dropout_rate: float = 0.0) -> GemmaConfig:
    """GemmaConfig (family 'gemma3') from one HF Gemma 3 text stack config dict; every problem is named.

    Also reads T5Gemma 2's text stacks (`model_types`); `extra_fields` are further keys the caller handles.
    """
    problems: list[str] = []
    get = lambda k: d.get(k, HF_DEFAULTS.get(k))  # noqa: E731
    if d.get("model_type", model_types[0]) not in model_types:
        problems.append(f"{where}model_type={d['model_type']!r} (expected {' / '.join(map(repr, model_types))})")
    unknown = sorted(set(d) - MAPPED - IGNORED - extra_fields)
    problems += [f"{where}{k}={d[k]!r} (unknown field)" for k in unknown]
    for k in ("hidden_activation", "hidden_act"):
        if d.get(k) not in (None, "gelu_pytorch_tanh"):
            problems.append(f"{where}{k}={d[k]!r} (only 'gelu_pytorch_tanh' is supported)")
    for k in ("attention_bias", "use_bidirectional_attention"):
        if d.get(k):
            problems.append(f"{where}{k}={d[k]!r} (unsupported)")
    if d.get("attn_logit_softcapping") is not None:
        problems.append(f"{where}attn_logit_softcapping={d['attn_logit_softcapping']!r} (transformers' Gemma 3 "
                        "ignores it; attention soft-capping is unsupported for this family)")
    if d.get("attention_dropout", 0.0) not in (0, 0.0, None):
        problems.append(f"{where}attention_dropout={d['attention_dropout']!r} (no attention dropout here)")
    if d.get("partial_rotary_factor", 1.0) != 1.0:
        problems.append(f"{where}partial_rotary_factor={d['partial_rotary_factor']!r} (unsupported)")
    if d.get("tie_word_embeddings") is False:
        problems.append(f"{where}tie_word_embeddings=false (the LM head must be tied to the embedding)")
    theta, local_theta, factor = _rope(d, where, problems)
    for k in INT_FIELDS:
        if not _positive_int(get(k)):
            problems.append(f"{where}{k}={get(k)!r} (must be a positive integer)")
    n = get("num_hidden_layers") if _positive_int(get("num_hidden_layers")) else 1
    period = d.get("sliding_window_pattern", d.get("_sliding_window_pattern", HF_DEFAULTS["sliding_window_pattern"]))
    if not _positive_int(period):
        problems.append(f"{where}sliding_window_pattern={period!r} (must be a positive integer)")
        period = 1
    types = d.get("layer_types") or ["sliding_attention" if (i + 1) % period else "full_attention" for i in range(n)]
    inverse = {v: k for k, v in LAYER_TYPES.items()}
    if not isinstance(types, list) or len(types) != n or any(t not in inverse for t in types):
        problems.append(f"{where}layer_types={types!r} (need {n} entries of sliding_attention/full_attention)")
        types = ["full_attention"] * n
    window = get("sliding_window")
    if window is None and "sliding_attention" in types:
        problems.append(f"{where}sliding_window=None (sliding_attention layers need a window)")
    elif window is not None and not _positive_int(window):
        problems.append(f"{where}sliding_window={window!r} (must be a positive integer or null)")
    eps, cap, qpas = get("rms_norm_eps"), get("final_logit_softcapping"), get("query_pre_attn_scalar")
    if not _positive_number(eps):
        problems.append(f"{where}rms_norm_eps={eps!r} (must be a positive number)")
    if cap is not None and not _positive_number(cap):
        problems.append(f"{where}final_logit_softcapping={cap!r} (must be a positive number or null)")
    if not _positive_number(qpas) or float(qpas) != int(qpas):
        problems.append(f"{where}query_pre_attn_scalar={qpas!r} (must be a positive integer)")
    if problems:
        raise CheckpointError("unsupported config fields: " + "; ".join(problems))
    try:
        return gemma_config(
            "gemma3", vocab_size=int(get("vocab_size")), num_layers=n, embed_dim=int(get("hidden_size")),
            hidden_dim=int(get("intermediate_size")), num_heads=int(get("num_attention_heads")),
            head_dim=int(get("head_dim")), num_kv_heads=int(get("num_key_value_heads")),
            query_pre_attn_scalar=int(qpas), sliding_window=window, attn_logits_soft_cap=None,
            final_logit_soft_cap=None if cap is None else float(cap), rope_theta=theta, local_rope_theta=local_theta,
            rope_scaling_factor=factor, rms_norm_eps=float(eps),
            attention_pattern=_compress([inverse[t] for t in types]), dtype=dtype, param_dtype=param_dtype,
            dropout_rate=float(dropout_rate))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"invalid config {where or ''}values: {e}") from e


def hf_problems(config: GemmaConfig, where: str = "") -> list[str]:
    """Fields of one stack that transformers' Gemma 3 / T5Gemma 2 cannot express (empty: exportable)."""
    problems = []
    if config.arch != "gemma3":
        problems.append(f"{where}arch={config.arch!r} (a Gemma 3 checkpoint needs a 'gemma3' stack)")
    if not config.qk_norm:
        problems.append(f"{where}qk_norm=False (transformers' Gemma 3 always has q_norm / k_norm)")
    if config.attn_logits_soft_cap is not None:
        problems.append(f"{where}attn_logits_soft_cap={config.attn_logits_soft_cap} (transformers' Gemma 3 "
                        "has no attention soft-capping)")
    if config.window_rule != "split":
        problems.append(f"{where}window_rule={config.window_rule!r} (the Gemma 3 family uses 'split'; a "
                        "checkpoint cannot record another rule)")
    return problems


def stack_config_to_hf(config: GemmaConfig) -> dict[str, Any]:
    """The HF fields of one Gemma 3 stack (shared by Gemma3TextConfig and T5Gemma 2's stack configs)."""
    types = [LAYER_TYPES[t] if config.sliding_window is not None else "full_attention"
             for t in config.attention_types]
    theta, local = float(config.rope_theta), float(config.rope_for("local")[0])
    full: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
    if config.rope_scaling_factor != 1.0:
        full = {"rope_type": "linear", "rope_theta": theta, "factor": float(config.rope_scaling_factor)}
    cap = config.final_logit_soft_cap
    return {
        "vocab_size": config.vocab_size, "hidden_size": config.embed_dim,
        "intermediate_size": config.hidden_dim, "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads, "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim, "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": int(config.query_pre_attn_scalar), "sliding_window": config.sliding_window,
        "layer_types": types, "attn_logit_softcapping": None,
        "final_logit_softcapping": None if cap is None else float(cap), "rms_norm_eps": config.rms_norm_eps,
        "rope_parameters": {"full_attention": full, "sliding_attention": {"rope_type": "default",
                                                                          "rope_theta": local}},
        "attention_bias": False, "attention_dropout": 0.0, "max_position_embeddings": 131_072,
        "initializer_range": 0.02, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
        "tie_word_embeddings": True, "use_cache": True,
    }


def gemma3_config_from_hf(d: dict[str, Any], *, dtype: str = "float32",
                          param_dtype: str = "float32") -> GemmaConfig:
    """GemmaConfig from a Gemma3ForCausalLM config.json dict (model_type 'gemma3_text')."""
    return stack_config_from_hf(d, dtype=dtype, param_dtype=param_dtype)


def to_hf_gemma3_config(config: GemmaConfig, dtype: str = "float32") -> dict[str, Any]:
    """config.json contents for `transformers.Gemma3ForCausalLM`; inexpressible fields raise, all named."""
    problems = hf_problems(config)
    if config.eoi_token_id is not None:
        problems.append(f"eoi_token_id={config.eoi_token_id} (Gemma3ForCausalLM has no eoi embedding; it is a "
                        "T5Gemma 2 option)")
    if problems:
        raise CheckpointError("config cannot be saved as Gemma 3: " + "; ".join(problems))
    return {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "dtype": dtype,
            "use_bidirectional_attention": False, **stack_config_to_hf(config)}


def load_hf_gemma3(path: str | Path, *, param_dtype: str = "float32",
                   dtype: str = "float32") -> tuple[GemmaConfig, dict[str, Any]]:
    """Read an HF Gemma 3 text checkpoint directory (config.json + *.safetensors, sharded or not).

    Returns (config, params) with params cast to `param_dtype`; `dtype` is the activation dtype put in the
    config. Every mismatch (missing / unexpected keys, shapes, unsupported config fields) raises one
    CheckpointError naming each offender; nothing is returned partially.
    """
    config = gemma3_config_from_hf(pm.read_config_json(path), dtype=dtype, param_dtype=param_dtype)
    return config, read_decoder_checkpoint(path, config, param_dtype)


def save_hf_gemma3(config: GemmaConfig, params: dict[str, Any], path: str | Path, *, dtype: str | None = None,
                   max_shard_bytes: int | None = None) -> None:
    """Write config.json + model.safetensors (or shards + index) loadable by `Gemma3ForCausalLM`.

    `dtype` ('float32' / 'bfloat16') converts the weights; default keeps the parameters' dtype. The tied
    `lm_head.weight` is not written (as transformers does). The write is atomic (temp dir + rename).
    """
    write_decoder_checkpoint(config, params, path, to_hf_gemma3_config(config), dtype, max_shard_bytes)
