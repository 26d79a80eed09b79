"""Frozen model configs, the architecture registry and named presets (Gemma 2 / Gemma 3, T5Gemma 1 / 2).

One `GemmaConfig` describes one transformer stack (decoder-only LM, or the encoder / decoder half of an
encoder-decoder). `EncDecConfig` pairs two stacks, `EncoderOnlyConfig` adds pooling and a task head.

An architecture is a configuration of the one block (`layers.Block`): `ARCHITECTURES` is the single place
that says which block options a family uses (QK-norm, soft-caps, local/global pattern, RoPE bases, the
encoder's two-sided window rule) and which encoder-decoder options its T5Gemma variant uses (tied
embeddings, merged attention). Adding a family means adding one entry there (plus its HF key names in
`interop`). Presets follow the official Flax T5Gemma configs (S ... XL), Gemma 2 (2B, 9B, 27B) and Gemma 3
(270M, 1B, 4B); pairs of Gemma 3 stacks are T5Gemma 2 models.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

AttentionType = Literal["local", "global"]
WindowRule = Literal["symmetric", "split"]
Pooling = Literal["first", "last", "mean", "attention"]
Task = Literal["classification", "regression", "ranking"]
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class GemmaConfig:
    """One Gemma transformer stack (the block options are what distinguishes Gemma 2 from Gemma 3).

    `rope_theta` is the RoPE base of global layers, `local_rope_theta` that of local (sliding-window) layers
    (None: the same); `rope_scaling_factor` divides the positions of global layers (linear RoPE scaling).
    `qk_norm` adds an RMSNorm over head_dim on q and k. `window_rule` is the two-sided window of a
    bidirectional stack: 'symmetric' keeps |q - k| <= w - 1 (Flax T5Gemma); 'split' keeps
    -(w // 2 + 1) < q - k < (w + 1) // 2 (transformers' T5Gemma 2). `eoi_token_id` (T5Gemma 2) gives that
    token a learned, unscaled embedding of its own (`embedder/eoi_embedding`).
    """

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
    arch: str = "gemma2"
    qk_norm: bool = False
    local_rope_theta: float | None = None
    rope_scaling_factor: float = 1.0
    window_rule: WindowRule = "symmetric"
    eoi_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"GemmaConfig.arch must be one of {sorted(ARCHITECTURES)}, got {self.arch!r}")
        if self.window_rule not in ("symmetric", "split"):
            raise ValueError(f"window_rule must be 'symmetric' or 'split', got {self.window_rule!r}")
        if self.rope_scaling_factor <= 0:
            raise ValueError(f"rope_scaling_factor must be positive, got {self.rope_scaling_factor}")
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

    def rope_for(self, kind: AttentionType) -> tuple[float, float]:
        """(RoPE base, linear position scale) of a local or global layer."""
        if kind == "local":
            return (self.rope_theta if self.local_rope_theta is None else self.local_rope_theta), 1.0
        return self.rope_theta, self.rope_scaling_factor

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

    `merged_attention=True` (T5Gemma 2) replaces each decoder layer's self- and cross-attention by one
    attention over [decoder states; encoder outputs] with one combined mask. Its K/V weights are shared
    between the two parts when the widths are equal; a wider encoder (unbalanced, which transformers does
    not support) gets its own `cross_k_proj` / `cross_v_proj` kernels [D_enc, K * h] for the encoder part,
    initialised randomly like T5Gemma's unbalanced cross-attention.
    """

    encoder: GemmaConfig
    decoder: GemmaConfig
    tie_embeddings: bool = False
    merged_attention: bool = False

    def __post_init__(self) -> None:
        if self.tie_embeddings and (
            self.encoder.embed_dim != self.decoder.embed_dim or self.encoder.vocab_size != self.decoder.vocab_size
        ):
            raise ValueError("tie_embeddings needs equal encoder/decoder embed_dim and vocab_size")
        if self.tie_embeddings and self.encoder.eoi_token_id != self.decoder.eoi_token_id:
            raise ValueError("tie_embeddings shares the eoi embedding too: encoder and decoder eoi_token_id differ")

    @property
    def merged_shared_kv(self) -> bool:
        """Merged attention whose encoder keys/values reuse the decoder's K/V weights (equal widths)."""
        return self.merged_attention and self.encoder.embed_dim == self.decoder.embed_dim

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


# ------------------------------------------------------------------------------------ architectures
@dataclasses.dataclass(frozen=True)
class Architecture:
    """A Gemma family as a configuration of the block: stack defaults, encoder-decoder options, HF names."""

    name: str
    stack: dict  # GemmaConfig field defaults of this family
    encdec: dict  # EncDecConfig options of its encoder-decoder (T5Gemma variant)
    encdec_stack: dict  # stack fields every stack of that encoder-decoder gets
    hf_decoder: str  # transformers model_type of the decoder-only model
    hf_encdec: str  # transformers model_type of the encoder-decoder


ARCHITECTURES: dict[str, Architecture] = {
    "gemma2": Architecture(
        "gemma2", stack=dict(attn_logits_soft_cap=50.0, final_logit_soft_cap=30.0, qk_norm=False,
                             attention_pattern=("local", "global"), rope_theta=10_000.0, local_rope_theta=None,
                             window_rule="symmetric"),
        encdec=dict(tie_embeddings=False, merged_attention=False), encdec_stack={},
        hf_decoder="gemma2", hf_encdec="t5gemma"),
    "gemma3": Architecture(
        "gemma3", stack=dict(attn_logits_soft_cap=None, final_logit_soft_cap=None, qk_norm=True,
                             attention_pattern=("local",) * 5 + ("global",), rope_theta=1_000_000.0,
                             local_rope_theta=10_000.0, window_rule="split"),
        encdec=dict(tie_embeddings=True, merged_attention=True), encdec_stack=dict(eoi_token_id=256_000),
        hf_decoder="gemma3_text", hf_encdec="t5gemma2"),
}


def gemma_config(arch: str, **fields) -> GemmaConfig:
    """A stack of family `arch` (its block options as defaults, `fields` on top)."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return GemmaConfig(**{**ARCHITECTURES[arch].stack, "arch": arch, **fields})


def encdec_config(encoder: GemmaConfig, decoder: GemmaConfig, **options) -> EncDecConfig:
    """An encoder-decoder of two stacks of one family with that family's T5Gemma options (overridable)."""
    if encoder.arch != decoder.arch:
        raise ValueError(f"encoder ({encoder.arch}) and decoder ({decoder.arch}) must be of one family")
    a = ARCHITECTURES[decoder.arch]
    opts = {**a.encdec, **options}
    # Stack fields of the family's encoder-decoder (an eoi id outside a small vocabulary is dropped).
    stack = {k: v for k, v in a.encdec_stack.items() if k != "eoi_token_id" or v < decoder.vocab_size}
    enc, dec = encoder.replace(**stack), decoder.replace(**stack)
    if "tie_embeddings" not in options and (enc.embed_dim, enc.vocab_size) != (dec.embed_dim, dec.vocab_size):
        opts["tie_embeddings"] = False  # an unbalanced pair cannot share one table
    return EncDecConfig(encoder=enc, decoder=dec, **opts)


# --------------------------------------------------------------------------------------------- presets
GEMMA_VOCAB = 256_000
GEMMA3_VOCAB = 262_144


def _stack(layers: int, d: int, ffn: int, heads: int, head_dim: int, kv: int, qscale: int | None = None,
           vocab: int = GEMMA_VOCAB) -> GemmaConfig:
    return gemma_config("gemma2", vocab_size=vocab, num_layers=layers, embed_dim=d, hidden_dim=ffn,
                        num_heads=heads, head_dim=head_dim, num_kv_heads=kv, query_pre_attn_scalar=qscale or head_dim)


def _gemma3(layers: int, d: int, ffn: int, heads: int, kv: int, window: int, vocab: int = GEMMA3_VOCAB,
            head_dim: int = 256, rope_scaling: float = 1.0) -> GemmaConfig:
    return gemma_config("gemma3", vocab_size=vocab, num_layers=layers, embed_dim=d, hidden_dim=ffn, num_heads=heads,
                        head_dim=head_dim, num_kv_heads=kv, query_pre_attn_scalar=256, sliding_window=window,
                        rope_scaling_factor=rope_scaling)


DECODER_PRESETS: dict[str, GemmaConfig] = {
    "S": _stack(8, 512, 1024, 8, 64, 8),
    "B": _stack(12, 768, 2048, 12, 64, 12),
    "L": _stack(24, 1024, 2816, 16, 64, 16),
    "ML": _stack(26, 1152, 6912, 4, 256, 4),
    "XL": _stack(24, 2048, 5120, 32, 64, 32),
    "2B": _stack(26, 2304, 9216, 8, 256, 4),
    "9B": _stack(42, 3584, 14336, 16, 256, 8),
    "27B": _stack(46, 4608, 36864, 32, 128, 16, qscale=4608 // 32),
    # Gemma 3 (google/gemma-3-270m, -1b-pt, -4b-pt text configs); pairs of them are T5Gemma 2 models.
    "270M": _gemma3(18, 640, 2048, 4, 1, 512),
    "1B": _gemma3(26, 1152, 6912, 4, 1, 512),
    "4B": _gemma3(34, 2560, 10240, 8, 4, 1024, vocab=262_208, rope_scaling=8.0),
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
    # Tiny Gemma 3: 6 layers so that the 5 local : 1 global pattern appears once.
    "tiny3": _gemma3(6, 64, 128, 4, 2, 8, vocab=512, head_dim=16).replace(query_pre_attn_scalar=16),
    "tiny3-large": _gemma3(6, 96, 192, 4, 2, 8, vocab=512, head_dim=24).replace(query_pre_attn_scalar=24),
}


def decoder_preset(name: str, **overrides) -> GemmaConfig:
    """A named decoder-only preset, optionally with fields replaced (e.g. vocab_size=8192)."""
    if name not in DECODER_PRESETS:
        raise KeyError(f"unknown decoder preset {name!r}; known: {sorted(DECODER_PRESETS)}")
    return DECODER_PRESETS[name].replace(**overrides)


def encdec_preset(name: str, **overrides) -> EncDecConfig:
    """An encoder-decoder preset named 'ENC-DEC' (e.g. 'S-S', '2B-2B', '9B-2B', '270M-270M', 'tiny3-tiny3').

    The family's encoder-decoder options apply: Gemma 2 stacks give T5Gemma, Gemma 3 stacks T5Gemma 2 (tied
    embeddings and merged attention; an unbalanced Gemma 3 pair cannot tie its tables and is left untied).
    """
    enc, dec = _split_pair(name)
    return encdec_config(decoder_preset(enc, **overrides), decoder_preset(dec, **overrides))


def _split_pair(name: str) -> tuple[str, str]:
    for enc in sorted(DECODER_PRESETS, key=len, reverse=True):
        if name.startswith(enc + "-") and name[len(enc) + 1:] in DECODER_PRESETS:
            return enc, name[len(enc) + 1:]
    raise KeyError(f"unknown encoder-decoder preset {name!r}; use 'ENC-DEC' with names from "
                   f"{sorted(DECODER_PRESETS)}")


ENCDEC_PRESETS: tuple[str, ...] = ("S-S", "B-B", "L-L", "ML-ML", "XL-XL", "2B-2B", "9B-2B", "9B-9B",
                                   "270M-270M", "1B-1B", "4B-4B")


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
