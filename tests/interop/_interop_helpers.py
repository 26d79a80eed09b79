"""Shared helpers for the interop tests: tiny random HF models, randomisation, comparisons."""

from __future__ import annotations

import math

import jax
import numpy as np
import torch
import transformers

from workbench import decoder, encdec

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TOL = 1e-4  # max |Δlogit| in fp32; never loosened
WINDOW = 8
STACK = dict(num_attention_heads=4, num_key_value_heads=2, sliding_window=WINDOW)
SMALL = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4, head_dim=16,
             query_pre_attn_scalar=16, **STACK)
WIDE = dict(vocab_size=256, hidden_size=96, intermediate_size=192, num_hidden_layers=6, head_dim=24,
            query_pre_attn_scalar=24, **STACK)


def gemma2_model(seed: int = 0, **kw) -> transformers.Gemma2ForCausalLM:
    cfg = transformers.Gemma2Config(**{**SMALL, **kw}, attn_implementation="eager")
    return randomize_(transformers.Gemma2ForCausalLM(cfg).eval(), seed)


def t5gemma_model(enc: dict, dec: dict, seed: int = 0) -> transformers.T5GemmaForConditionalGeneration:
    cfg = transformers.T5GemmaConfig(encoder=dict(enc), decoder=dict(dec), vocab_size=dec["vocab_size"],
                                     attn_implementation="eager")
    return randomize_(transformers.T5GemmaForConditionalGeneration(cfg).eval(), seed)


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int, qk_scale: float = 1.0, final_gain: float | None = None):
    """Weights with O(1) activations: linear N(0, 1/fan_in), embeddings N(0, 1), norm scales N(0, 0.3^2).

    `qk_scale` multiplies the self-attention q/k projections (attention logits grow by qk_scale^2) and
    `final_gain` sets the final norm gain (1 + scale) of the decoder, to make the soft-caps saturate.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        r = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if p.ndim == 1:
            p.copy_(0.3 * r)
        elif "embed_tokens" in name:
            p.copy_(r)
        else:
            p.copy_(r / math.sqrt(p.shape[1]))
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            p.mul_(qk_scale)
    if final_gain is not None:
        norm = model.model.decoder.norm if hasattr(model.model, "decoder") else model.model.norm
        norm.weight.copy_(final_gain - 1 + 0.1 * torch.randn(norm.weight.shape, generator=g))
    return model


def tokens(seed: int, shape: tuple[int, int], vocab: int = 256) -> np.ndarray:
    return np.random.RandomState(seed).randint(3, vocab, size=shape).astype(np.int64)


def positions(mask: np.ndarray) -> np.ndarray:
    """Our RoPE positions (cumsum of the mask - 1, clamped at 0), passed to HF for padded inputs."""
    return np.maximum(np.cumsum(mask, axis=-1) - 1, 0)


def max_diff(ref, ours, mask: np.ndarray | None = None) -> float:
    d = np.abs(np.asarray(ref, np.float64) - np.asarray(ours, np.float64))
    if mask is not None:
        d = d[np.asarray(mask, bool)]
    return float(d.max())


def report(name: str, value: float) -> None:
    print(f"PARITY {name}: max|dlogit| = {value:.2e}")


def until_eos(row, eos: int = 1) -> list[int]:
    row = [int(t) for t in row]
    return row[: row.index(eos) + 1] if eos in row else row


# Jitted forwards (configs are frozen dataclasses, hence static); tests share shapes to share compilations.
decoder_forward = jax.jit(decoder.forward, static_argnums=1)
encdec_forward = jax.jit(encdec.forward, static_argnums=1)


def random_params(config, seed: int = 0) -> dict:
    """Standard-normal parameters of `config`'s shapes (numpy, in tree order; no model init is compiled)."""
    from workbench.models import model_for

    rng = np.random.RandomState(seed)
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), model_for(config).abstract_params())


def assert_params_equal(a, b) -> None:
    """Same leaf paths, bitwise-equal leaves (the failing path is named)."""
    from workbench.interop.params_map import flatten

    fa, fb = flatten(a), flatten(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]), err_msg="/".join(k))
