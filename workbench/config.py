"""Frozen model configs and named presets (Gemma 2 family, T5Gemma pairs, encoder-only).

One `GemmaConfig` describes one transformer stack (decoder-only LM, or the encoder / decoder half of an
encoder-decoder). `EncDecConfig` pairs two stacks, `EncoderOnlyConfig` adds pooling and a task head.
Presets follow the official Flax T5Gemma configs (S ... XL) and Gemma 2 (2B, 9B, 27B).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

AttentionType = Literal["local", "global"]
Pooling = Literal["first", "last", "mean", "attention"]
Task = Literal["classification", "regression", "ranking"]
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class GemmaConfig:
    """One Gemma 2 transformer stack."""

    vocab_size: int
    num_layers: int
    embed_dim: int
    hidden_dim: int
    num_heads: int
    head_dim: int
    num_kv_heads: int
    query_pre_attn_scalar: int
    sliding_window: int | None = 4096
    attn_logits_soft_cap: float | None = 50.0
    final_logit_soft_cap: float | None = 30.0
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-6
    attention_pattern: tuple[AttentionType, ...] = ("local", "global")
    dtype: str = "float32"
    param_dtype: str = "float32"
    dropout_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_layers", "embed_dim", "hidden_dim", "num_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GemmaConfig.{name} must be positive, got {getattr(self, name)}")
        if self.num_kv_heads <= 0 or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a positive multiple of num_kv_heads ({self.num_kv_heads})"
            )
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(f"GemmaConfig.{name} must be one of {sorted(_DTYPES)} (never float16), "
                                 f"got {getattr(self, name)!r}")
        if not self.attention_pattern or any(a not in ("local", "global") for a in self.attention_pattern):
            raise ValueError(f"attention_pattern must hold 'local'/'global', got {self.attention_pattern}")
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise ValueError(f"sliding_window must be positive or None, got {self.sliding_window}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")

    @property
    def attention_types(self) -> tuple[AttentionType, ...]:
        """Per-layer attention type, cycling the pattern (local first in Gemma 2)."""
        p = self.attention_pattern
        return tuple(p[i % len(p)] for i in range(self.num_layers))

    @property
    def activation_dtype(self) -> jnp.dtype:
        return _DTYPES[self.dtype]

    @property
    def weight_dtype(self) -> jnp.dtype:
        return _DTYPES[self.param_dtype]

    def replace(self, **kw) -> GemmaConfig:
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class EncDecConfig:
    """Encoder-decoder (T5Gemma): a bidirectional encoder stack and a decoder stack with cross-attention.

    Cross-attention uses the decoder's head count and head_dim; only its K/V read the encoder width.
    `tie_embeddings=True` shares one table between encoder, decoder and LM head (T5Gemma 2 style); it needs
    equal widths and vocabularies. The LM head is always tied to the decoder embedding.
    """

    encoder: GemmaConfig
    decoder: GemmaConfig
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.tie_embeddings and (
            self.encoder.embed_dim != self.decoder.embed_dim or self.encoder.vocab_size != self.decoder.vocab_size
        ):
            raise ValueError("tie_embeddings needs equal encoder/decoder embed_dim and vocab_size")

    @property
    def balanced(self) -> bool:
        return self.encoder == self.decoder

    def replace(self, **kw) -> EncDecConfig:
        return dataclasses.replace(self, **kw)


@dataclasses.dataclass(frozen=True)
class EncoderOnlyConfig:
    """Bidirectional Gemma encoder + pooling + task head (Gemma Encoder).

    Dropout (`dropout_rate`) is applied to the pooled representation before the head; `encoder.dropout_rate`
    controls dropout inside the stack (after attention and FFN, before the post-norms' residual add).
    """

    encoder: GemmaConfig
    pooling: Pooling = "mean"
    task: Task = "classification"
    num_labels: int = 2
    pooling_heads: int = 4
    dropout_rate: float = 0.0
    causal: bool = False

    def __post_init__(self) -> None:
        if self.pooling not in ("first", "last", "mean", "attention"):
            raise ValueError(f"pooling must be first|last|mean|attention, got {self.pooling!r}")
        if self.task not in ("classification", "regression", "ranking"):
            raise ValueError(f"task must be classification|regression|ranking, got {self.task!r}")
        if self.task == "classification" and self.num_labels < 2:
            raise ValueError("classification needs num_labels >= 2")
        if self.pooling == "attention" and self.encoder.embed_dim % self.pooling_heads:
            raise ValueError("embed_dim must be divisible by pooling_heads")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")

    @property
    def num_outputs(self) -> int:
        return self.num_labels if self.task == "classification" else 1

    def replace(self, **kw) -> EncoderOnlyConfig:
        return dataclasses.replace(self, **kw)


# --------------------------------------------------------------------------------------------- presets
GEMMA_VOCAB = 256_000


def _stack(layers: int, d: int, ffn: int, heads: int, head_dim: int, kv: int, qscale: int | None = None,
           vocab: int = GEMMA_VOCAB) -> GemmaConfig:
    return GemmaConfig(vocab_size=vocab, num_layers=layers, embed_dim=d, hidden_dim=ffn, num_heads=heads,
                       head_dim=head_dim, num_kv_heads=kv, query_pre_attn_scalar=qscale or head_dim)


DECODER_PRESETS: dict[str, GemmaConfig] = {
    "S": _stack(8, 512, 1024, 8, 64, 8),
    "B": _stack(12, 768, 2048, 12, 64, 12),
    "L": _stack(24, 1024, 2816, 16, 64, 16),
    "ML": _stack(26, 1152, 6912, 4, 256, 4),
    "XL": _stack(24, 2048, 5120, 32, 64, 32),
    "2B": _stack(26, 2304, 9216, 8, 256, 4),
    "9B": _stack(42, 3584, 14336, 16, 256, 8),
    "27B": _stack(46, 4608, 36864, 32, 128, 16, qscale=4608 // 32),
    # CPU-scale stand-ins, pretrained by the workbench itself on the offline corpus (8k vocabulary):
    # "mini" plays Gemma 2 2B (small), "mini-large" plays 9B (large), "micro" is the smallest suite member.
    "micro": GemmaConfig(vocab_size=8192, num_layers=2, embed_dim=64, hidden_dim=256, num_heads=2, head_dim=32,
                         num_kv_heads=1, query_pre_attn_scalar=32, sliding_window=32),
    "mini": GemmaConfig(vocab_size=8192, num_layers=4, embed_dim=128, hidden_dim=512, num_heads=4, head_dim=32,
                        num_kv_heads=2, query_pre_attn_scalar=32, sliding_window=32),
    "mini-large": GemmaConfig(vocab_size=8192, num_layers=6, embed_dim=192, hidden_dim=768, num_heads=6,
                              head_dim=32, num_kv_heads=2, query_pre_attn_scalar=32, sliding_window=32),
    # Tiny presets for tests and smoke runs (real architecture, small sizes).
    "tiny": GemmaConfig(vocab_size=512, num_layers=4, embed_dim=64, hidden_dim=128, num_heads=4, head_dim=16,
                        num_kv_heads=2, query_pre_attn_scalar=16, sliding_window=8),
    "tiny-large": GemmaConfig(vocab_size=512, num_layers=6, embed_dim=96, hidden_dim=192, num_heads=4,
                              head_dim=24, num_kv_heads=2, query_pre_attn_scalar=24, sliding_window=8),
}


def decoder_preset(name: str, **overrides) -> GemmaConfig:
    """A named decoder-only preset, optionally with fields replaced (e.g. vocab_size=8192)."""
    if name not in DECODER_PRESETS:
        raise KeyError(f"unknown decoder preset {name!r}; known: {sorted(DECODER_PRESETS)}")
    return DECODER_PRESETS[name].replace(**overrides)


def encdec_preset(name: str, **overrides) -> EncDecConfig:
    """An encoder-decoder preset named 'ENC-DEC' (e.g. 'S-S', '2B-2B', '9B-2B', 'tiny-large-tiny')."""
    enc, dec = _split_pair(name)
    return EncDecConfig(encoder=decoder_preset(enc, **overrides), decoder=decoder_preset(dec, **overrides))


def _split_pair(name: str) -> tuple[str, str]:
    for enc in sorted(DECODER_PRESETS, key=len, reverse=True):
        if name.startswith(enc + "-") and name[len(enc) + 1:] in DECODER_PRESETS:
            return enc, name[len(enc) + 1:]
    raise KeyError(f"unknown encoder-decoder preset {name!r}; use 'ENC-DEC' with names from "
                   f"{sorted(DECODER_PRESETS)}")


ENCDEC_PRESETS: tuple[str, ...] = ("S-S", "B-B", "L-L", "ML-ML", "XL-XL", "2B-2B", "9B-2B", "9B-9B")


# ----------------------------------------------------------------------------------------- serialisation
def config_to_dict(config: GemmaConfig | EncDecConfig | EncoderOnlyConfig) -> dict:
    """JSON-ready dict with a 'kind' tag; inverse of `config_from_dict`."""
    kind = {GemmaConfig: "decoder", EncDecConfig: "encdec", EncoderOnlyConfig: "encoder_only"}[type(config)]
    return {"kind": kind, **dataclasses.asdict(config)}


def config_from_dict(d: dict) -> GemmaConfig | EncDecConfig | EncoderOnlyConfig:
    """Rebuild a config written by `config_to_dict` (unknown fields are an error)."""
    d = dict(d)
    kind = d.pop("kind", "decoder")

    def stack(s: dict) -> GemmaConfig:
        s = dict(s)
        if "attention_pattern" in s:
            s["attention_pattern"] = tuple(s["attention_pattern"])
        return GemmaConfig(**s)

    if kind == "decoder":
        return stack(d)
    if kind == "encdec":
        return EncDecConfig(encoder=stack(d.pop("encoder")), decoder=stack(d.pop("decoder")), **d)
    if kind == "encoder_only":
        return EncoderOnlyConfig(encoder=stack(d.pop("encoder")), **d)
    raise ValueError(f"unknown config kind {kind!r}")
