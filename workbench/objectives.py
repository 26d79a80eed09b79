"""Loss factories: each returns `loss_fn(params, batch, rng=None) -> (loss, metrics)`.

Batches are dicts of integer arrays with pad id 0:
- causal LM:            {'tokens' [B, L]}
- encoder-decoder s2s:  {'inputs' [B, S], 'targets' [B, T]}  (PrefixLM halves, UL2 examples, finetuning)
- decoder-only s2s:     the same keys; inputs and targets are concatenated (prefix bidirectional or causal)
- distillation:         s2s keys + 'teacher_ids' / 'teacher_logits' [B, T, k] from `add_teacher_topk`
- classification:       {'tokens' [B, L], 'labels' [B]} ; regression: float 'labels'
- ranking (listwise):   {'tokens' [B, C, L], 'labels' [B]} (index of the relevant candidate)
Losses are means over real target tokens (or examples); metrics are scalars.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from workbench import decoder, encdec, encoder, masks
from workbench.config import EncDecConfig, EncoderOnlyConfig, GemmaConfig

Params = dict[str, Any]
Batch = dict[str, jnp.ndarray]
LossFn = Callable[..., tuple[jnp.ndarray, dict[str, jnp.ndarray]]]
PAD, EOS, BOS = 0, 1, 2


def _same_fn_for_same_args(factory: Callable[..., LossFn]) -> Callable[..., LossFn]:
    """Return the same loss function object for equal (hashable) factory arguments: the trainer and
    `evaluate` reuse a compiled program per function object, so a second seed or run compiles nothing."""
    cached = functools.lru_cache(maxsize=64)(factory)

    @functools.wraps(factory)
    def make(*args, **kw) -> LossFn:
        try:
            return cached(*args, **kw)
        except TypeError as e:  # an unhashable argument: build a fresh function
            if "unhashable" not in str(e):
                raise
            return factory(*args, **kw)

    return make


def token_cross_entropy(logits_BxTxV: jnp.ndarray, targets_BxT: jnp.ndarray, weights_BxT: jnp.ndarray
                        ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Weighted mean next-token cross-entropy (fp32) and token accuracy.

    A token counts as correct when its gold logit is the largest (ties with another id count as correct): read
    from the max the log-sum-exp takes anyway, with no argmax over the vocabulary (37 ms of a 700 ms CPU step).
    """
    logits = logits_BxTxV.astype(jnp.float32)
    logz = jax.nn.logsumexp(logits, axis=-1)
    gold = jnp.take_along_axis(logits, targets_BxT[..., None], axis=-1)[..., 0]
    w = weights_BxT.astype(jnp.float32)
    n = jnp.maximum(w.sum(), 1.0)
    loss = jnp.sum((logz - gold) * w) / n
    acc = jnp.sum((gold >= jnp.max(logits, axis=-1)) * w) / n
    return loss, {"loss": loss, "accuracy": acc, "tokens": w.sum()}


def _distill(logits_BxTxV, batch, weights_BxT, temperature: float) -> jnp.ndarray:
    """KL(teacher || student) over the teacher's top-k support, scaled by temperature^2."""
    t_logits = batch["teacher_logits"].astype(jnp.float32) / temperature
    t_probs = jax.nn.softmax(t_logits, axis=-1)
    s_logp = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32) / temperature, axis=-1)
    s_logp_k = jnp.take_along_axis(s_logp, batch["teacher_ids"], axis=-1)
    kl_BxT = jnp.sum(t_probs * (jax.nn.log_softmax(t_logits, -1) - s_logp_k), axis=-1)
    w = weights_BxT.astype(jnp.float32)
    return temperature ** 2 * jnp.sum(kl_BxT * w) / jnp.maximum(w.sum(), 1.0)


def _with_kd(ce, metrics, logits, batch, weights, kd_weight: float, temperature: float):
    if kd_weight == 0.0:
        return ce, metrics
    if "teacher_logits" not in batch:
        raise KeyError("kd_weight > 0 needs 'teacher_logits'/'teacher_ids' in the batch (see add_teacher_topk)")
    kd = _distill(logits, batch, weights, temperature)
    loss = (1.0 - kd_weight) * ce + kd_weight * kd
    return loss, {**metrics, "ce": ce, "kd": kd, "loss": loss}


@_same_fn_for_same_args
def causal_lm_loss(config: GemmaConfig) -> LossFn:
    """Next-token prediction on {'tokens'}; padding (0) is neither attended nor predicted."""

    def loss_fn(params: Params, batch: Batch, rng: jax.Array | None = None):
        tokens = batch["tokens"]
        mask = tokens != PAD
        logits = decoder.forward(params, config, tokens, mask, deterministic=rng is None, rng=rng)
        # position i predicts token i + 1; the last position predicts nothing (weight 0). Shifting the targets,
        # not slicing the [B, L, V] logits, spares a copy of the logits and its padded gradient.
        targets = jnp.concatenate([tokens[:, 1:], jnp.full_like(tokens[:, :1], PAD)], axis=1)
        weights = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
        return token_cross_entropy(logits, targets, weights)

    return loss_fn


@_same_fn_for_same_args
def encdec_seq2seq_loss(config: EncDecConfig, *, kd_weight: float = 0.0, temperature: float = 1.0,
                        encoder_attention: str = "bidirectional") -> LossFn:
    """Encoder reads 'inputs'; decoder reads targets shifted right (BOS first) and predicts 'targets'.

    Serves PrefixLM (halves from `workbench.data.prefix_lm_split`), UL2 (`ul2_example`) and finetuning.
    `kd_weight` mixes in distillation from a teacher's top-k logits; `encoder_attention='causal'` is the
    causal-encoder ablation.
    """

    def loss_fn(params: Params, batch: Batch, rng: jax.Array | None = None):
        inputs, targets = batch["inputs"], batch["targets"]
        dec_in = masks.shift_right(targets, BOS)
        weights = targets != PAD
        logits = encdec.forward(params, config, inputs, dec_in, inputs != PAD, dec_in != PAD,
                                encoder_attention=encoder_attention, deterministic=rng is None, rng=rng)
        ce, metrics = token_cross_entropy(logits, targets, weights)
        return _with_kd(ce, metrics, logits, batch, weights, kd_weight, temperature)

    return loss_fn


def concat_prefix(inputs_BxS: jnp.ndarray, targets_BxT: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """[left-aligned inputs ; targets] and the prefix mask: target j is predicted at position S - 1 + j."""
    inputs, in_mask = masks.left_align(inputs_BxS, inputs_BxS != PAD)
    tokens = jnp.concatenate([inputs, targets_BxT], axis=1)
    prefix = jnp.concatenate([in_mask, jnp.zeros(targets_BxT.shape, bool)], axis=1)
    return tokens, prefix


def target_window(inputs_BxS: jnp.ndarray, targets_BxT: jnp.ndarray) -> tuple[int, int]:
    """Positions of [inputs ; targets] whose logits predict the T targets: [S - 1, S - 1 + T). The LM head runs
    there only (`decoder.forward(logits_window=...)`), not over the input part."""
    S, T = inputs_BxS.shape[1], targets_BxT.shape[1]
    return S - 1, S - 1 + T


@_same_fn_for_same_args
def decoder_seq2seq_loss(config: GemmaConfig, *, attention: str = "prefix", kd_weight: float = 0.0,
                         temperature: float = 1.0) -> LossFn:
    """Decoder-only on {'inputs','targets'}: loss on the targets only. attention='prefix' makes the input
    part bidirectional (decoder-only PrefixLM); 'causal' is plain causal finetuning."""
    if attention not in ("prefix", "causal"):
        raise ValueError(f"attention must be 'prefix' or 'causal', got {attention!r}")

    def loss_fn(params: Params, batch: Batch, rng: jax.Array | None = None):
        inputs, targets = batch["inputs"], batch["targets"]
        tokens, prefix = concat_prefix(inputs, targets)
        logits = decoder.forward(params, config, tokens, tokens != PAD, attention=attention,
                                 prefix_BxL=prefix if attention == "prefix" else None,
                                 deterministic=rng is None, rng=rng, logits_window=target_window(inputs, targets))
        weights = targets != PAD
        ce, metrics = token_cross_entropy(logits, targets, weights)
        return _with_kd(ce, metrics, logits, batch, weights, kd_weight, temperature)

    return loss_fn


@functools.partial(jax.jit, static_argnames=("config", "k"))
def teacher_topk(teacher_params: Params, config: GemmaConfig, inputs_BxS: jnp.ndarray, targets_BxT: jnp.ndarray,
                 k: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Online teacher pass: the decoder-only LM reads [inputs ; targets] causally; returns its top-k
    (logits, ids) [B, T, k] at the positions that predict each target token."""
    tokens, _ = concat_prefix(inputs_BxS, targets_BxT)
    logits = decoder.forward(teacher_params, config, tokens, tokens != PAD,
                             logits_window=target_window(inputs_BxS, targets_BxT))
    return jax.lax.top_k(logits, k)


def add_teacher_topk(batch: dict, teacher_params: Params, teacher_config: GemmaConfig, k: int = 64) -> dict:
    """Return `batch` with 'teacher_logits' and 'teacher_ids' (the teacher's top-k) added."""
    k = min(k, teacher_config.vocab_size)
    vals, ids = teacher_topk(teacher_params, teacher_config, jnp.asarray(batch["inputs"]),
                             jnp.asarray(batch["targets"]), k)
    return {**batch, "teacher_logits": vals, "teacher_ids": ids}


def _encoder_outputs(params: Params, config: EncoderOnlyConfig, tokens_BxL: jnp.ndarray,
                     rng: jax.Array | None) -> jnp.ndarray:
    """Head outputs over padded tokens; dropout only when an rng is given (training)."""
    return encoder.forward(params, config, tokens_BxL, tokens_BxL != PAD, deterministic=rng is None, rng=rng)


@_same_fn_for_same_args
def classification_loss(config: EncoderOnlyConfig) -> LossFn:
    """Softmax cross-entropy on {'tokens','labels'}; also accuracy."""
    if config.task != "classification":
        raise ValueError(f"classification_loss needs task='classification', got {config.task!r}")

    def loss_fn(params: Params, batch: Batch, rng: jax.Array | None = None):
        logits = _encoder_outputs(params, config, batch["tokens"], rng)
        labels = batch["labels"].astype(jnp.int32)
        logp = jax.nn.log_softmax(logits, -1)
        loss = -jnp.mean(jnp.take_along_axis(logp, labels[:, None], -1))
        acc = jnp.mean(jnp.argmax(logits, -1) == labels)
        return loss, {"loss": loss, "accuracy": acc}

    return loss_fn


@_same_fn_for_same_args
def regression_loss(config: EncoderOnlyConfig) -> LossFn:
    """Mean squared error on float {'labels'}."""
    if config.task != "regression":
        raise ValueError(f"regression_loss needs task='regression', got {config.task!r}")

    def loss_fn(params: Params, batch: Batch, rng: jax.Array | None = None):
        pred = _encoder_outputs(params, config, batch["tokens"], rng)
        loss = jnp.mean((pred - batch["labels"].astype(jnp.float32)) ** 2)
        return loss, {"loss": loss, "mse": loss}

    return loss_fn


@_same_fn_for_same_args
def ranking_loss(config: EncoderOnlyConfig, *, listwise: bool = True) -> LossFn:
    """RankT5-style: scores for each query's C candidates [B, C]; listwise softmax CE on the relevant one,
    or pointwise sigmoid CE (`listwise=False`)."""
    if config.task != "ranking":
        raise ValueError(f"ranking_loss needs task='ranking', got {config.task!r}")

    def loss_fn(params: Params, batch: Batch, rng: jax.Array | None = None):
        tokens_BxCxL = batch["tokens"]
        B, C, L = tokens_BxCxL.shape
        scores_BxC = _encoder_outputs(params, config, tokens_BxCxL.reshape(B * C, L), rng).reshape(B, C)
        labels = batch["labels"].astype(jnp.int32)
        if listwise:
            logp = jax.nn.log_softmax(scores_BxC, -1)
            loss = -jnp.mean(jnp.take_along_axis(logp, labels[:, None], -1))
        else:
            onehot = jax.nn.one_hot(labels, C)
            loss = jnp.mean(-onehot * jax.nn.log_sigmoid(scores_BxC) - (1 - onehot) * jax.nn.log_sigmoid(-scores_BxC))
        acc = jnp.mean(jnp.argmax(scores_BxC, -1) == labels)
        return loss, {"loss": loss, "top1": acc}

    return loss_fn

