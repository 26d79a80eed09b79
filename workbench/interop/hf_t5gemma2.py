"""Hugging Face T5Gemma 2 (`T5Gemma2ForConditionalGeneration`) checkpoints <-> workbench encoder-decoder params.

Text only: T5Gemma 2's encoder also holds a SigLIP vision tower and a multi-modal projector, which the text
path never reads. Keys are read and written as transformers writes them (`model.encoder.text_model.*`, its
module names, is read too); tied embeddings and merged attention:
HF key                                                              -> our path
  model.encoder.embed_tokens.weight                                   decoder/embedder/embedding (one table)
  model.encoder.embed_tokens.eoi_embedding  [D]                       decoder/embedder/eoi_embedding
  model.encoder.layers.{i}.*                                          encoder/layer_i/*
  model.decoder.layers.{i}.self_attn.{q,k,v,o}_proj (T), {q,k}_norm   decoder/layer_i/attn/* (merged attention)
  model.{encoder,decoder}.layers.{i}.{pre,post}_self_attn_layernorm   {stack}/layer_i/{pre,post}_attention_norm
  model.{encoder,decoder}.layers.{i}.{pre,post}_feedforward_layernorm {stack}/layer_i/{pre,post}_ffw_norm
  model.{encoder,decoder}.layers.{i}.mlp.{gate,up,down}_proj (T)      {stack}/layer_i/mlp/*/kernel
  model.{encoder,decoder}.norm.weight                                 {stack}/final_norm/scale
  model.decoder.embed_tokens.{weight,eoi_embedding}, lm_head.out_proj.weight: optional, tied (must be equal)
  model.encoder.vision_tower.*, model.encoder.multi_modal_projector.*: must be present, never read

Only what transformers' T5Gemma 2 can express exports: merged attention, tied embeddings (encoder, decoder
and LM head share one table and one eoi embedding) and equal encoder / decoder widths and vocabularies
(depths and FFN widths may differ). An unbalanced pair (wider encoder, own `cross_k_proj` / `cross_v_proj`)
runs in the workbench but raises CheckpointError on export.

eoi: transformers always has an eoi embedding and an `eoi_token_index` (one for both stacks). Our
`eoi_token_id=None` saves `eoi_token_index = vocab_size` with a zero eoi embedding: token ids are below
vocab_size, so it never matches and the model is unchanged. Loading maps an index >= vocab_size back to
None when that vector is zero (a non-zero vector there raises: it would be silently lost).

Vision tower: `save_hf_t5gemma2` writes the smallest SigLIP config transformers constructs and loads:
`VISION_CONFIG` (hidden_size 1, intermediate_size 1, 0 layers, 1 head, 1 channel, image_size = patch_size = 1,
no pooling head) with `mm_tokens_per_image=1`, so the projector's average-pool kernel,
(image_size // patch_size) // sqrt(mm_tokens_per_image), is 1 and valid. That leaves five one-number
vision tensors plus the projector's [1, D] matrix and [1] norm, all zeros (D + 6 numbers). The vision path
still runs (a 1x1 one-channel image becomes one zero soft token); a wider or deeper tower would only add
weights the text model never reads. `load_hf_t5gemma2` checks
that vision tower and projector weights are present (the projector's text width must be D) and ignores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from workbench import encdec
from workbench.config import EncDecConfig, GemmaConfig
from workbench.interop import params_map as pm
from workbench.interop.errors import CheckpointError
from workbench.interop.hf_gemma2 import GENERATION_CONFIG
from workbench.interop.hf_gemma3 import HF_DEFAULTS, IGNORED, hf_problems, stack_config_from_hf, stack_config_to_hf
from workbench.interop.hf_t5gemma import NORMS
from workbench.interop.safetensors_io import CheckpointReader, write_checkpoint_dir

VISION_CONFIG: dict[str, Any] = {
    "model_type": "siglip_vision_model", "hidden_size": 1, "intermediate_size": 1, "num_hidden_layers": 0,
    "num_attention_heads": 1, "num_channels": 1, "image_size": 1, "patch_size": 1, "vision_use_head": False,
    "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "attention_dropout": 0.0,
}
VISION_PREFIX, PROJECTOR_PREFIX = "model.encoder.vision_tower.", "model.encoder.multi_modal_projector."
PROJECTION = PROJECTOR_PREFIX + "mm_input_projection_weight"
SOFT_EMB_NORM = PROJECTOR_PREFIX + "mm_soft_emb_norm.weight"
# Tensors of VISION_CONFIG's tower (name -> shape), as transformers writes them.
VISION_TENSORS: dict[str, tuple[int, ...]] = {
    "embeddings.patch_embedding.weight": (1, 1, 1, 1), "embeddings.patch_embedding.bias": (1,),
    "embeddings.position_embedding.weight": (1, 1), "post_layernorm.weight": (1,), "post_layernorm.bias": (1,),
}
# transformers' defaults for the image token ids (unused by the text path).
IMAGE_TOKENS = {"boi_token_index": 255_999, "image_token_index": 256_001}
DEFAULT_EOI = 256_000
ENCODER_PREFIXES = ("model.encoder.", "model.encoder.text_model.")
TOP_FIELDS = frozenset({"model_type", "encoder", "decoder", "dropout_rate", "attention_dropout",
                        "classifier_dropout_rate", "image_token_index", "eoi_token_index", "tie_word_embeddings",
                        "vocab_size"})
ENCODER_FIELDS = frozenset({"model_type", "text_config", "vision_config", "mm_tokens_per_image", "boi_token_index",
                            "eoi_token_index", "image_token_index", "tie_word_embeddings"})


def _key_map(enc: str):
    """Our path -> (HF key, transpose?) with the encoder text stack under prefix `enc`."""
    def to_hf(path: pm.Path_) -> tuple[str, bool]:
        if path in (("decoder", "embedder", "embedding"), ("decoder", "embedder", "eoi_embedding")):
            return f"{enc}embed_tokens.{'weight' if path[2] == 'embedding' else 'eoi_embedding'}", False
        if path[0] == "encoder":
            return pm.stack_to_hf(path[1:], enc, NORMS)
        if path[0] == "decoder":
            return pm.stack_to_hf(path[1:], "model.decoder.", NORMS)
        raise CheckpointError(f"parameter {'/'.join(path)} has no Hugging Face counterpart")
    return to_hf


def _parse(d: dict[str, Any], dtype: str, param_dtype: str) -> tuple[EncDecConfig, int]:
    """(config, eoi_token_index) from a T5Gemma2ForConditionalGeneration config.json dict."""
    problems: list[str] = []
    if d.get("model_type", "t5gemma2") != "t5gemma2":
        problems.append(f"model_type={d['model_type']!r} (expected 't5gemma2')")
    problems += [f"{k}={d[k]!r} (unknown field)" for k in sorted(set(d) - TOP_FIELDS - IGNORED)]
    if d.get("is_encoder_decoder") is False:
        problems.append("is_encoder_decoder=false (T5Gemma 2 is an encoder-decoder)")
    if d.get("tie_word_embeddings") is False:
        problems.append("tie_word_embeddings=false (the LM head must be tied to the embedding)")
    if d.get("attention_dropout", 0.0) not in (0, 0.0, None):
        problems.append(f"attention_dropout={d['attention_dropout']!r} (no attention dropout here)")
    enc_d, dec_d = d.get("encoder") or {}, d.get("decoder") or {}
    text_d = enc_d.get("text_config") or {}
    if enc_d.get("model_type", "t5gemma2_encoder") != "t5gemma2_encoder":
        problems.append(f"encoder.model_type={enc_d['model_type']!r} (expected 't5gemma2_encoder')")
    problems += [f"encoder.{k}={enc_d[k]!r} (unknown field)" for k in sorted(set(enc_d) - ENCODER_FIELDS - IGNORED)]
    if enc_d.get("tie_word_embeddings") is False:
        problems.append("encoder.tie_word_embeddings=false (the embeddings must be tied)")
    eoi = enc_d.get("eoi_token_index", DEFAULT_EOI)
    if d.get("eoi_token_index") is not None and d["eoi_token_index"] != eoi:
        problems.append(f"eoi_token_index={d['eoi_token_index']!r} != encoder.eoi_token_index={eoi!r}")
    if isinstance(eoi, bool) or not isinstance(eoi, int) or eoi < 0:
        problems.append(f"encoder.eoi_token_index={eoi!r} (must be a non-negative integer)")
        eoi = DEFAULT_EOI
    dropout = d.get("dropout_rate", 0.0)
    stacks: dict[str, GemmaConfig] = {}
    for name, sub, model_type in (("encoder", text_d, "t5gemma2_text"),
                                  ("decoder", dec_d, "t5gemma2_decoder")):
        where = "encoder.text_config." if name == "encoder" else "decoder."
        try:
            stacks[name] = stack_config_from_hf(sub, where, model_types=(model_type,),
                                                extra_fields=frozenset({"dropout_rate"}), dtype=dtype,
                                                param_dtype=param_dtype, dropout_rate=dropout)
        except CheckpointError as e:  # collect both stacks' problems into one error
            problems.append(str(e).removeprefix("unsupported config fields: "))
    for hf in ("hidden_size", "vocab_size"):  # raw values: named even when a stack has other problems
        e, c = text_d.get(hf, HF_DEFAULTS[hf]), dec_d.get(hf, HF_DEFAULTS[hf])
        if e != c:
            problems.append(f"encoder.text_config.{hf}={e!r} != decoder.{hf}={c!r} (T5Gemma 2 needs equal widths "
                            "and vocabularies)")
    if d.get("vocab_size") is not None and d["vocab_size"] != dec_d.get("vocab_size", HF_DEFAULTS["vocab_size"]):
        problems.append(f"vocab_size={d['vocab_size']!r} != decoder.vocab_size="
                        f"{dec_d.get('vocab_size', HF_DEFAULTS['vocab_size'])!r}")
    if problems:
        raise CheckpointError("unsupported config fields: " + "; ".join(problems))
    eoi_id = eoi if eoi < stacks["decoder"].vocab_size else None
    try:
        config = EncDecConfig(encoder=stacks["encoder"].replace(eoi_token_id=eoi_id),
                              decoder=stacks["decoder"].replace(eoi_token_id=eoi_id), tie_embeddings=True,
                              merged_attention=True)
    except ValueError as e:
        raise CheckpointError(f"invalid config: {e}") from e
    return config, eoi


def t5gemma2_config_from_hf(d: dict[str, Any], *, dtype: str = "float32",
                            param_dtype: str = "float32") -> EncDecConfig:
    """EncDecConfig from a T5Gemma2ForConditionalGeneration config.json dict (eoi index >= vocab: None)."""
    return _parse(d, dtype, param_dtype)[0]


def to_hf_t5gemma2_config(config: EncDecConfig, dtype: str = "float32") -> dict[str, Any]:
    """config.json contents for `transformers.T5Gemma2ForConditionalGeneration`; what it cannot express raises."""
    enc, dec = config.encoder, config.decoder
    problems = hf_problems(enc, "encoder.") + hf_problems(dec, "decoder.")
    if not config.merged_attention:
        problems.append("merged_attention=False (transformers' T5Gemma 2 needs merged attention)")
    if enc.embed_dim != dec.embed_dim:
        problems.append(f"encoder.embed_dim={enc.embed_dim} != decoder.embed_dim={dec.embed_dim} (transformers' "
                        "T5Gemma 2 needs equal widths: an unbalanced pair cannot be exported)")
    if enc.vocab_size != dec.vocab_size:
        problems.append(f"encoder.vocab_size={enc.vocab_size} != decoder.vocab_size={dec.vocab_size} "
                        "(transformers' T5Gemma 2 needs one vocabulary)")
    if not config.tie_embeddings:
        problems.append("tie_embeddings=False (transformers' T5Gemma 2 ties encoder, decoder and LM head "
                        "embeddings)")
    if enc.eoi_token_id != dec.eoi_token_id:
        problems.append(f"encoder.eoi_token_id={enc.eoi_token_id} != decoder.eoi_token_id={dec.eoi_token_id}")
    if dec.eoi_token_id is not None and not 0 <= dec.eoi_token_id < dec.vocab_size:
        problems.append(f"eoi_token_id={dec.eoi_token_id} (must be in [0, vocab_size) or None)")
    if enc.dropout_rate != dec.dropout_rate:
        problems.append(f"encoder.dropout_rate={enc.dropout_rate} != decoder.dropout_rate={dec.dropout_rate} "
                        "(transformers' T5Gemma 2 has one dropout_rate)")
    if problems:
        raise CheckpointError("config cannot be saved as T5Gemma 2: " + "; ".join(problems))
    eoi = dec.vocab_size if dec.eoi_token_id is None else dec.eoi_token_id
    text = {**stack_config_to_hf(enc), "model_type": "t5gemma2_text", "dropout_rate": enc.dropout_rate}
    encoder = {"model_type": "t5gemma2_encoder", "text_config": text, "vision_config": dict(VISION_CONFIG),
               "mm_tokens_per_image": 1, "eoi_token_index": eoi, **IMAGE_TOKENS, "initializer_range": 0.02,
               "tie_word_embeddings": True}
    decoder = {**stack_config_to_hf(dec), "model_type": "t5gemma2_decoder", "dropout_rate": dec.dropout_rate}
    return {"architectures": ["T5Gemma2ForConditionalGeneration"], "model_type": "t5gemma2", "dtype": dtype,
            "encoder": encoder, "decoder": decoder, "is_encoder_decoder": True, "tie_word_embeddings": True,
            "dropout_rate": dec.dropout_rate, "attention_dropout": 0.0, "classifier_dropout_rate": 0.0,
            "initializer_range": 0.02, "image_token_index": IMAGE_TOKENS["image_token_index"],
            "eoi_token_index": eoi, "vocab_size": dec.vocab_size, "pad_token_id": 0, "eos_token_id": 1,
            "bos_token_id": 2, "use_cache": True}


def load_hf_t5gemma2(path: str | Path, *, param_dtype: str = "float32",
                     dtype: str = "float32") -> tuple[EncDecConfig, dict[str, Any]]:
    """Read an HF T5Gemma 2 checkpoint directory -> (EncDecConfig, params) of the text model.

    The vision tower and projector must be present and are ignored. Every mismatch (keys, shapes, config
    fields, a non-zero eoi vector behind an index >= vocab_size) raises one CheckpointError naming each.
    """
    config, eoi = _parse(pm.read_config_json(path), dtype, param_dtype)
    reader = CheckpointReader(path)
    keys = set(reader.keys())
    enc = ENCODER_PREFIXES[1] if any(k.startswith(ENCODER_PREFIXES[1]) for k in keys) else ENCODER_PREFIXES[0]
    problems = []
    if not any(k.startswith(VISION_PREFIX) for k in keys):
        problems.append(f"missing keys: {VISION_PREFIX}* (transformers' T5Gemma 2 always has a vision tower)")
    for key in (PROJECTION, SOFT_EMB_NORM):
        if key not in keys:
            problems.append(f"missing key: {key}")
    if PROJECTION in keys and reader.shape(PROJECTION)[-1:] != (config.decoder.embed_dim,):
        problems.append(f"{PROJECTION}: expected [*, {config.decoder.embed_dim}], found "
                        f"{list(reader.shape(PROJECTION))}")
    eoi_key = f"{enc}embed_tokens.eoi_embedding"
    if config.decoder.eoi_token_id is None:
        if eoi_key not in keys:
            problems.append(f"missing key: {eoi_key}")
        elif reader.shape(eoi_key) != (config.decoder.embed_dim,) or np.any(reader.read(eoi_key) != 0):
            problems.append(f"{eoi_key}: eoi_token_index={eoi} >= vocab_size={config.decoder.vocab_size} never "
                            "matches a token, so the eoi embedding must be a zero vector of the model width")

    def ignored(key: str) -> bool:
        return key.startswith((VISION_PREFIX, PROJECTOR_PREFIX)) or (config.decoder.eoi_token_id is None
                                                                      and key == eoi_key)

    shapes = pm.expected_shapes(lambda: encdec.init(config, jax.random.key(0)))
    tied = {"model.decoder.embed_tokens.weight": f"{enc}embed_tokens.weight",
            "lm_head.out_proj.weight": f"{enc}embed_tokens.weight",
            "model.decoder.embed_tokens.eoi_embedding": eoi_key}
    try:
        params = pm.load_params(path, shapes, _key_map(enc), tied, param_dtype, ignored)
    except CheckpointError as e:
        raise CheckpointError("\n  ".join([str(e), *problems])) from None
    if problems:
        raise CheckpointError(f"checkpoint {path} does not match the model config:\n  " + "\n  ".join(problems))
    return config, params


def save_hf_t5gemma2(config: EncDecConfig, params: dict[str, Any], path: str | Path, *, dtype: str | None = None,
                     max_shard_bytes: int | None = None) -> None:
    """Write config.json + safetensors that `T5Gemma2ForConditionalGeneration.from_pretrained` loads.

    Adds the zero vision tower / projector of `VISION_CONFIG` (and a zero eoi embedding when
    `eoi_token_id` is None). `dtype` converts the weights (default: keep). The tied decoder embedding and LM
    head are not written (as transformers does). Unbalanced pairs, `merged_attention=False` and untied
    embeddings raise CheckpointError. The write is atomic (temp dir + rename).
    """
    hf_config = to_hf_t5gemma2_config(config, "float32")
    shapes = pm.expected_shapes(lambda: encdec.init(config, jax.random.key(0)))
    enc = ENCODER_PREFIXES[0]
    tensors = pm.params_to_tensors(params, shapes, _key_map(enc), dtype)
    table = tensors[f"{enc}embed_tokens.weight"]
    zeros = lambda *shape: np.zeros(shape, table.dtype)  # noqa: E731
    if config.decoder.eoi_token_id is None:
        tensors[f"{enc}embed_tokens.eoi_embedding"] = zeros(config.decoder.embed_dim)
    tensors.update({VISION_PREFIX + name: zeros(*shape) for name, shape in VISION_TENSORS.items()})
    tensors[PROJECTION] = zeros(VISION_CONFIG["hidden_size"], config.decoder.embed_dim)
    tensors[SOFT_EMB_NORM] = zeros(VISION_CONFIG["hidden_size"])
    hf_config["dtype"] = dtype or pm.dtype_name(params)
    write_checkpoint_dir(path, tensors, {"config.json": hf_config,
                                         "generation_config.json": {**GENERATION_CONFIG,
                                                                    "decoder_start_token_id": 2}},
                         max_shard_bytes)
