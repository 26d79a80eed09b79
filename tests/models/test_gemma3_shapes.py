"""Gemma 3 / T5Gemma 2 parameter counts (jax.eval_shape) against transformers on the meta device, and shapes.

transformers' models are built from the configs our interop writes (`to_hf_gemma3_config`,
`to_hf_t5gemma2_config`) under `torch.device('meta')`: no memory. T5Gemma 2's vision tower and projector are
left out of its count (our model is text only).
"""

from __future__ import annotations

import jax
import pytest
import torch
import transformers

from workbench import config as C
from workbench import decoder, encdec
from workbench.interop import to_hf_gemma3_config, to_hf_t5gemma2_config

transformers.logging.set_verbosity_error()
GEMMA3_270M = 268_098_176  # google/gemma-3-270m


def _hf_count(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> int:
    """Distinct parameters (tied ones once), leaving out those whose name contains any of `skip`."""
    return sum(p.numel() for n, p in model.named_parameters() if not any(s in n for s in skip))


@pytest.mark.parametrize("name", ["270M", "1B", "4B"])
def test_gemma3_param_counts_match_transformers(name):
    cfg = C.decoder_preset(name)
    hf_cfg = transformers.Gemma3TextConfig.from_dict(to_hf_gemma3_config(cfg))
    with torch.device("meta"):
        hf = _hf_count(transformers.Gemma3ForCausalLM(hf_cfg))
    ours = decoder.param_count(cfg)
    print(f"PARITY param count gemma3 {name}: ours {ours:,} HF {hf:,}")
    assert ours == hf
    if name == "270M":
        assert ours == GEMMA3_270M


@pytest.mark.parametrize("name", ["270M-270M", "1B-1B", "4B-4B"])
def test_t5gemma2_param_counts_match_transformers_text_model(name):
    cfg = C.encdec_preset(name)
    assert cfg.tie_embeddings and cfg.merged_attention and cfg.decoder.eoi_token_id == 256_000
    hf_cfg = transformers.T5Gemma2Config.from_dict(to_hf_t5gemma2_config(cfg))
    with torch.device("meta"):
        hf = _hf_count(transformers.T5Gemma2ForConditionalGeneration(hf_cfg),
                       skip=(".vision_tower.", ".multi_modal_projector."))
    ours = encdec.param_count(cfg)
    print(f"PARITY param count t5gemma2 {name} (text): ours {ours:,} HF {hf:,}")
    assert ours == hf


def _shapes(cfg):
    init = encdec.init if isinstance(cfg, C.EncDecConfig) else decoder.init
    return jax.eval_shape(lambda: init(cfg, jax.random.key(0)))


def test_gemma3_layer_has_qk_norm_and_no_eoi_embedding():
    cfg = C.decoder_preset("1B")
    p = _shapes(cfg)
    attn = p["layer_0"]["attn"]
    assert attn["q_norm"]["scale"].shape == attn["k_norm"]["scale"].shape == (cfg.head_dim,)
    assert set(p["embedder"]) == {"embedding"}


def test_t5gemma2_balanced_pair_is_tied_and_merged():
    cfg = C.encdec_preset("270M-270M")
    p = _shapes(cfg)
    assert "embedder" not in p["encoder"]  # one table, read by both stacks and the LM head
    assert p["decoder"]["embedder"]["eoi_embedding"].shape == (cfg.decoder.embed_dim,)
    layer = p["decoder"]["layer_0"]
    assert "cross_attn" not in layer and "pre_cross_attn_norm" not in layer
    assert "cross_k_proj" not in layer["attn"]  # equal widths: encoder K/V reuse the decoder's k/v kernels


def test_t5gemma2_unbalanced_pair_has_own_cross_kv():
    cfg = C.encdec_preset("tiny3-large-tiny3")
    attn = _shapes(cfg)["decoder"]["layer_0"]["attn"]
    kv = cfg.decoder.num_kv_heads * cfg.decoder.head_dim
    assert attn["cross_k_proj"]["kernel"].shape == attn["cross_v_proj"]["kernel"].shape == (cfg.encoder.embed_dim,
                                                                                            kv)
