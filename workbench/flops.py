"""The one FLOP count used by MFU, benchmarks and the quality-vs-FLOPs plots (paper Figure 3).

Only matmul FLOPs are counted, 2 * m * n * k each: the q/k/v/o projections, the GeGLU FFN (gate, up, down),
the tied LM head, and the attention score (QK^T) and value (PV) products. Norms, RoPE, soft-caps, softmax
and the embedding lookup are ignored (they are O(D) per token, not O(D^2)).

Attention counts the keys a query may *see*, not the dense [L, S] block an implementation may compute:
causal attention sees (L + 1) / 2 keys on average, a causal local layer min(window, i + 1) keys for query
i, a bidirectional local layer the two-sided band |q - k| <= window - 1 (the Flax rule, `masks.py`), and
cross-attention every encoder token. Training = 3 x forward (backward = 2 x forward for matmuls).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from workbench import masks
from workbench.config import EncDecConfig, GemmaConfig

Kind = Literal["causal", "bidirectional"]


def visible_keys(seq_len: int, kind: Kind = "causal", window: int | None = None, rule: str = "symmetric") -> float:
    """Average number of keys a query attends to in a length-`seq_len` self-attention.

    `rule` is the stack's two-sided window rule for bidirectional attention (`masks.window_sides`).
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    i = np.arange(seq_len, dtype=np.int64)
    if kind == "causal":
        seen = i + 1 if window is None else np.minimum(i + 1, window)
    elif kind == "bidirectional":
        if window is None:
            return float(seq_len)
        left, right = masks.window_sides(window, rule, bidirectional=True)
        seen = np.minimum(i, left - 1) + np.minimum(seq_len - 1 - i, right - 1) + 1
    else:
        raise ValueError(f"kind must be 'causal' or 'bidirectional', got {kind!r}")
    return float(seen.sum()) / seq_len


def _layer_keys(config: GemmaConfig, seq_len: int, kind: Kind) -> list[float]:
    """Average visible keys per query, one entry per layer (local layers apply the sliding window)."""
    return [visible_keys(seq_len, kind, config.sliding_window if t == "local" else None, config.window_rule)
            for t in config.attention_types]


def projection_flops_per_token(config: GemmaConfig) -> int:
    """Forward matmul FLOPs per token of one layer's q/k/v/o projections and FFN (no attention products)."""
    d, h = config.embed_dim, config.head_dim
    qo = 2 * 2 * d * config.num_heads * h
    kv = 2 * 2 * d * config.num_kv_heads * h
    ffn = 3 * 2 * d * config.hidden_dim
    return qo + kv + ffn


def attention_flops_per_query(config: GemmaConfig, keys: float) -> float:
    """Score and value products (2 x 2 * H * h per key) for one query seeing `keys` keys."""
    return 4.0 * config.num_heads * config.head_dim * keys


def lm_head_flops_per_token(config: GemmaConfig) -> int:
    return 2 * config.embed_dim * config.vocab_size


def forward_flops_per_token(config: GemmaConfig, seq_len: int, kind: Kind = "causal", *,
                            lm_head: bool = True, attention: bool = True) -> float:
    """Forward matmul FLOPs per token of a decoder-only / encoder stack on length-`seq_len` sequences.

    kind: 'causal' (LM) or 'bidirectional' (encoder). `lm_head=False` for an encoder (no vocabulary
    projection); `attention=False` drops the attention products (the `2 * N_params` approximation).
    """
    total = float(config.num_layers * projection_flops_per_token(config))
    if attention:
        total += sum(attention_flops_per_query(config, k) for k in _layer_keys(config, seq_len, kind))
    if lm_head:
        total += lm_head_flops_per_token(config)
    return total


def train_flops_per_token(config: GemmaConfig, seq_len: int, kind: Kind = "causal", *,
                          attention: bool = True) -> float:
    """Forward + backward matmul FLOPs per token (3 x forward) of a causal-LM training step."""
    return 3.0 * forward_flops_per_token(config, seq_len, kind, attention=attention)


def decoder_seq2seq_flops_per_example(config: GemmaConfig, src_len: int, tgt_len: int, train: bool = False) -> float:
    """Matmul FLOPs of one decoder-only (src_len, tgt_len) example: the stack over the concatenated
    src_len + tgt_len tokens (causal), the LM head on the tgt_len positions that predict targets only (as
    `objectives.decoder_seq2seq_loss` computes it); x3 with `train`."""
    L = src_len + tgt_len
    fwd = (L * forward_flops_per_token(config, L, "causal", lm_head=False)
           + tgt_len * lm_head_flops_per_token(config))
    return 3.0 * fwd if train else fwd


def cross_attention_flops(config: EncDecConfig, enc_len: int, dec_len: int) -> float:
    """Forward FLOPs of all decoder cross-attention: q/o per decoder token, K/V once per encoder token.

    Merged attention (T5Gemma 2) has no q/o of its own: the self-attention's queries also score the encoder
    keys, so only the encoder K/V projections and the extra score/value products are counted.
    """
    dec, enc = config.decoder, config.encoder
    H, K, h = dec.num_heads, dec.num_kv_heads, dec.head_dim
    qo = 0 if config.merged_attention else 2 * 2 * dec.embed_dim * H * h
    per_layer = (dec_len * (qo + attention_flops_per_query(dec, enc_len))
                 + enc_len * 2 * 2 * enc.embed_dim * K * h)
    return float(dec.num_layers * per_layer)


def encdec_flops_per_example(config: EncDecConfig, enc_len: int, dec_len: int, train: bool = False, *,
                             encoder_kind: Kind = "bidirectional") -> float:
    """Matmul FLOPs of one (enc_len, dec_len) example: encoder (no LM head), decoder with cross-attention
    and LM head on every decoder position; x3 with `train`."""
    fwd = (enc_len * forward_flops_per_token(config.encoder, enc_len, encoder_kind, lm_head=False)
           + dec_len * forward_flops_per_token(config.decoder, dec_len, "causal")
           + cross_attention_flops(config, enc_len, dec_len))
    return 3.0 * fwd if train else fwd


def _check_generation(prompt_len: int, new_tokens: int) -> None:
    if new_tokens <= 0 or prompt_len <= 0:
        raise ValueError("prompt_len and new_tokens must be positive")


def decoder_generation_flops(config: GemmaConfig, prompt_len: int, new_tokens: int) -> float:
    """Greedy generation with a KV cache, decoder-only: the prompt and the first new_tokens - 1 generated
    tokens each pass the stack once (query i sees keys 0..i, windowed on local layers); the LM head runs once
    per generated token."""
    _check_generation(prompt_len, new_tokens)
    total = prompt_len + new_tokens - 1
    body = total * forward_flops_per_token(config, total, "causal", lm_head=False)
    return body + new_tokens * lm_head_flops_per_token(config)


def encdec_generation_flops(config: EncDecConfig, prompt_len: int, new_tokens: int) -> float:
    """Greedy generation, encoder-decoder: the prompt is encoded once (bidirectional), cross-attention K/V
    computed once, and the decoder runs on BOS + new_tokens - 1 tokens, each with the LM head."""
    _check_generation(prompt_len, new_tokens)
    enc = prompt_len * forward_flops_per_token(config.encoder, prompt_len, "bidirectional", lm_head=False)
    dec = new_tokens * forward_flops_per_token(config.decoder, new_tokens, "causal")
    return enc + dec + cross_attention_flops(config, prompt_len, new_tokens)


def generation_flops(config: GemmaConfig | EncDecConfig, prompt_len: int, new_tokens: int) -> float:
    """Inference FLOPs of greedy generation of `new_tokens` tokens with a KV cache (Figure 3's x-axis), for
    any generative model (`models.model_for(config).generation_flops`)."""
    from workbench.models import model_for

    return model_for(config).generation_flops(prompt_len, new_tokens)


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved matmul FLOP/s over the device's peak FLOP/s."""
    if peak_flops <= 0:
        raise ValueError("peak_flops must be positive")
    return tokens_per_s * flops_per_token / peak_flops


def matmul_peak(n: int = 2048, reps: int = 10) -> tuple[float, float]:
    """(FLOP/s, FLOP per CPU-second) of an n x n fp32 JAX matmul, best of `reps`: this machine's 'peak' for MFU
    on a CPU, measured in the same run as what it normalises.

    Under load from other processes the wall figure drops; the per-CPU-second figure (x cores) does not.
    """
    import time

    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best_w = best_c = float("inf")
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        f(a, a).block_until_ready()
        best_w, best_c = min(best_w, time.perf_counter() - t), min(best_c, time.process_time() - c)
    return 2 * n**3 / best_w, 2 * n**3 / best_c


H100_BF16_PEAK = 989e12
"""H100 SXM dense bf16 peak FLOP/s (H200: the same)."""
