"""One small interface over the three model kinds, so that callers never switch on model kinds themselves.

`model_for(config)` is the single place that maps a config to its kind:

| config              | kind           | forward                        | generates |
|---------------------|----------------|--------------------------------|-----------|
| `GemmaConfig`       | decoder-only   | `decoder.forward` (LM logits)  | yes       |
| `EncDecConfig`      | encoder-decoder| `encdec.forward` (decoder logits) | yes    |
| `EncoderOnlyConfig` | encoder-only   | `encoder.forward` (task outputs) | no      |

Each kind offers `init`, `forward`, `param_count`, `abstract_params` (shapes via `jax.eval_shape`),
`train_flops_per_example`, and the generation hooks `generation_flops` / `generate`, plus the Hugging Face
model type it is stored as (`hf_model_type`, from the family's entry in `config.ARCHITECTURES`).
Architectures (Gemma 2, Gemma 3) are configurations of one block, so they need no entry here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax

from workbench import decoder, encdec, encoder, flops, generate
from workbench.config import ARCHITECTURES, EncDecConfig, EncoderOnlyConfig, GemmaConfig
from workbench.tree import count_params

Params = dict[str, Any]
Config = GemmaConfig | EncDecConfig | EncoderOnlyConfig


@dataclasses.dataclass(frozen=True)
class Model:
    """A config bound to its kind's functions (subclasses set the class attributes)."""

    config: Config
    kind: ClassVar[str]
    stacks: ClassVar[tuple[str, ...]]  # config fields (= params keys) holding its stacks; () = the root is one
    _init: ClassVar[Callable[[Any, jax.Array], Params]]
    _forward: ClassVar[Callable[..., jax.Array]]

    def init(self, rng: jax.Array) -> Params:
        """Random parameters."""
        return type(self)._init(self.config, rng)

    def forward(self, params: Params, *args, **kwargs) -> jax.Array:
        """The kind's forward pass (`decoder.forward` / `encdec.forward` / `encoder.forward`)."""
        return type(self)._forward(params, self.config, *args, **kwargs)

    def abstract_params(self) -> Params:
        """Parameter shapes and dtypes (`jax.ShapeDtypeStruct` leaves) without allocating memory."""
        return jax.eval_shape(lambda: self.init(jax.random.key(0)))

    def param_count(self) -> int:
        """Exact parameter count (via `jax.eval_shape`)."""
        return count_params(self.abstract_params())

    @property
    def generative(self) -> bool:
        return False

    @property
    def hf_model_type(self) -> str | None:
        """transformers' `model_type` this model is stored as (None: no HF format)."""
        return None

    def train_flops_per_example(self, seq_len: int, target_len: int | None = None) -> float:
        raise NotImplementedError

    def generation_flops(self, prompt_len: int, new_tokens: int) -> float:
        raise TypeError(f"a {self.kind} model does not generate text")

    def generate(self, params: Params, prompt_BxS: jax.Array, max_new_tokens: int, *args, **kwargs) -> jax.Array:
        raise TypeError(f"a {self.kind} model does not generate text")


@dataclasses.dataclass(frozen=True)
class DecoderOnly(Model):
    kind: ClassVar[str] = "decoder"
    stacks: ClassVar[tuple[str, ...]] = ()
    _init = staticmethod(decoder.init)
    _forward = staticmethod(decoder.forward)

    @property
    def generative(self) -> bool:
        return True

    @property
    def hf_model_type(self) -> str:
        return ARCHITECTURES[self.config.arch].hf_decoder

    def train_flops_per_example(self, seq_len: int, target_len: int | None = None) -> float:
        """Causal-LM training FLOPs of one length-`seq_len` sequence; with `target_len`, of one seq2seq example
        (`seq_len` inputs then `target_len` targets, the LM head on the targets only)."""
        if target_len is None:
            return seq_len * flops.train_flops_per_token(self.config, seq_len)
        return flops.decoder_seq2seq_flops_per_example(self.config, seq_len, target_len, train=True)

    def generation_flops(self, prompt_len: int, new_tokens: int) -> float:
        return flops.decoder_generation_flops(self.config, prompt_len, new_tokens)

    def generate(self, params: Params, prompt_BxS: jax.Array, max_new_tokens: int, *args, **kwargs) -> jax.Array:
        return generate.generate_decoder(params, self.config, prompt_BxS, max_new_tokens, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class EncoderDecoder(Model):
    kind: ClassVar[str] = "encdec"
    stacks: ClassVar[tuple[str, ...]] = ("encoder", "decoder")
    _init = staticmethod(encdec.init)
    _forward = staticmethod(encdec.forward)

    @property
    def generative(self) -> bool:
        return True

    @property
    def hf_model_type(self) -> str:
        return ARCHITECTURES[self.config.decoder.arch].hf_encdec

    def train_flops_per_example(self, seq_len: int, target_len: int | None = None) -> float:
        """Training FLOPs of one (input `seq_len`, target `target_len`) example."""
        return flops.encdec_flops_per_example(self.config, seq_len, target_len or seq_len, train=True)

    def generation_flops(self, prompt_len: int, new_tokens: int) -> float:
        return flops.encdec_generation_flops(self.config, prompt_len, new_tokens)

    def generate(self, params: Params, prompt_BxS: jax.Array, max_new_tokens: int, *args, **kwargs) -> jax.Array:
        return generate.generate_encdec(params, self.config, prompt_BxS, max_new_tokens, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class EncoderOnly(Model):
    kind: ClassVar[str] = "encoder_only"
    stacks: ClassVar[tuple[str, ...]] = ("encoder",)
    _init = staticmethod(encoder.init)
    _forward = staticmethod(encoder.forward)

    def train_flops_per_example(self, seq_len: int, target_len: int | None = None) -> float:
        """Training FLOPs of one length-`seq_len` example (bidirectional stack, no LM head; the head and
        pooling are O(D) and not counted)."""
        cfg = self.config
        kind = "causal" if cfg.causal else "bidirectional"
        return 3.0 * seq_len * flops.forward_flops_per_token(cfg.encoder, seq_len, kind, lm_head=False)


KINDS: dict[type, type[Model]] = {GemmaConfig: DecoderOnly, EncDecConfig: EncoderDecoder,
                                  EncoderOnlyConfig: EncoderOnly}


def model_for(config: Config) -> Model:
    """The model interface of `config` (the one dispatch over model kinds)."""
    try:
        return KINDS[type(config)](config)
    except KeyError:
        raise TypeError(f"no model kind for {type(config).__name__}; known: "
                        f"{', '.join(t.__name__ for t in KINDS)}") from None
