"""Deterministic batch functions `get_batch(step) -> dict` for the trainer (one per objective), a fine-tuning
recipe for encoder-only task heads, held-out LM rows sampled across corpus sources, and the training-set loss.

Each batch depends only on (seed, step), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench import encoder, lm_eval, uncertainty
from workbench.config import EncoderOnlyConfig, GemmaConfig
from workbench.data.pipeline import (
    UL2_MIXTURE,
    Denoiser,
    pack_documents,
    pad_to,
    prefix_lm_split,
    sample_denoiser,
    ul2_example,
)
from workbench.evaluate import classification_metrics, eval_loss, predict, ranking_metrics, regression_metrics
from workbench.objectives import add_teacher_topk, classification_loss, ranking_loss, regression_loss
from workbench.train import TrainConfig, train

GetBatch = Callable[[int], dict]


def row_batches(arrays: Mapping[str, np.ndarray] | np.ndarray, batch_size: int, seed: int = 0) -> GetBatch:
    """Batches of rows; a fresh permutation per epoch fixed by (seed, epoch). A bare array is {'tokens'}."""
    arrays = {"tokens": arrays} if isinstance(arrays, np.ndarray) else dict(arrays)
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n < batch_size:
        raise ValueError(f"{n} rows < batch size {batch_size}: not enough data")
    perms: dict[int, np.ndarray] = {}

    def rows(step: int) -> np.ndarray:
        idx = np.arange(step * batch_size, (step + 1) * batch_size)
        out = []
        for epoch, r in zip(idx // n, idx % n, strict=True):
            if int(epoch) not in perms:
                perms[int(epoch)] = np.random.default_rng([seed, int(epoch)]).permutation(n)
            out.append(perms[int(epoch)][r])
        return np.asarray(out)

    def get_batch(step: int) -> dict:
        r = rows(step)
        return {k: np.asarray(v[r]) for k, v in arrays.items()}

    get_batch.rows = rows  # type: ignore[attr-defined]
    return get_batch


def prefix_lm_batches(tokens_NxL: np.ndarray, batch_size: int, seed: int = 0) -> GetBatch:
    """PrefixLM: first half of each packed row -> 'inputs', second half -> 'targets'."""
    return row_batches(prefix_lm_split(tokens_NxL), batch_size, seed)


def ul2_batches(tokens_NxL: np.ndarray, batch_size: int, sentinel_ids: Sequence[int], mode_ids: Mapping[str, int],
                seed: int = 0, mixture: Sequence[tuple[Denoiser, float]] = UL2_MIXTURE, eos_id: int = 1) -> GetBatch:
    """UL2: each row gets a denoiser drawn from `mixture` (rng fixed by seed, step, row) and its mode token.

    Inputs are padded to L + 1 (mode token), targets to L + 1 (spans, sentinels and EOS never exceed it for
    the default mixture; longer targets are cut, keeping EOS).
    """
    rows = row_batches(tokens_NxL, batch_size, seed)
    L = tokens_NxL.shape[1]

    def get_batch(step: int) -> dict:
        ins, tgs = [], []
        for i, row in enumerate(rows(step)["tokens"]):
            rng = np.random.default_rng([seed, step, i])
            ex = ul2_example(row[row != 0], rng, sample_denoiser(rng, mixture), sentinel_ids, mode_ids, eos_id)
            ins.append(ex["inputs"])
            t = list(ex["targets"])
            tgs.append(t if len(t) <= L + 1 else t[:L] + [eos_id])
        return {"inputs": pad_to(ins, L + 1), "targets": pad_to(tgs, L + 1)}

    return get_batch


def with_teacher(get_batch: GetBatch, teacher_params: Any, teacher_config: GemmaConfig, k: int = 64) -> GetBatch:
    """Add the decoder-only teacher's top-k logits for the targets (online distillation)."""
    def teacher_batch(step: int) -> dict:
        return {key: np.asarray(v) for key, v in
                add_teacher_topk(get_batch(step), teacher_params, teacher_config, k).items()}
    return teacher_batch


def finetune_encoder(params: Any, config: EncoderOnlyConfig, train_arrays: dict, eval_arrays: dict,
                     train_config: TrainConfig, batch_size: int, out_dir: str, *, progress: bool = False
                     ) -> tuple[dict[str, float], Any]:
    """Fine-tune an encoder-only model on {'tokens','labels'} ({'tokens' [N,C,L], 'labels'} for ranking) and
    return (metrics on `eval_arrays`, trained params). Metrics follow GLUE / MS MARCO conventions; 'score' is
    the task's primary metric, 'score_lo' / 'score_hi' its 95% bootstrap interval over the eval examples."""
    loss = {"classification": classification_loss, "regression": regression_loss,
            "ranking": ranking_loss}[config.task](config)
    run = train(loss, params, row_batches(train_arrays, batch_size, train_config.seed), train_config,
                out_dir=out_dir, progress=progress)
    scores = encoder.scores_fn(config)  # one function object per config: evaluation compiles once
    labels = eval_arrays["labels"]
    if config.task == "ranking":
        N, C, _ = eval_arrays["tokens"].shape
        out = predict(scores, run.params, {"tokens": eval_arrays["tokens"]}, max(1, batch_size * 4 // C))
        out = out.reshape(N, C)
        metrics = ranking_metrics(out, labels)
    else:
        out = predict(scores, run.params, {"tokens": eval_arrays["tokens"]}, batch_size * 4)
        metrics = (classification_metrics(out, labels) if config.task == "classification"
                   else regression_metrics(out, labels))
    return uncertainty.with_score(config.task, metrics, out, labels, seed=train_config.seed), run.params


def heldout_lm_rows(texts: Sequence[str], sources: Sequence[str], tokenizer: Any, seq_len: int, n_rows: int,
                    seed: int = 0, max_doc_tokens: int | None = None) -> np.ndarray:
    """`n_rows` packed LM rows int32 [n_rows, seq_len] of held-out documents drawn round-robin over the corpus
    sources (`lm_eval.sample_documents`, seeded), each contributing its first `max_doc_tokens` tokens + EOS, so
    neither the split's first documents nor one long document fill the rows. By default `max_doc_tokens` is the
    smallest multiple of `seq_len` with which the split yields `n_rows` rows.

    A drop-in for `lm_arrays(split["text"], tok, seq_len)[:n_rows]`, which packs the split in file order (one
    source). Raises ValueError when the documents run out before `n_rows` full rows."""
    docs = lm_eval.sample_documents(texts, sources, len(texts), seed)
    ids = tokenizer.encode_batch([d["text"] for d in docs])
    longest = max(len(x) for x in ids)

    def rows_with(cap: int) -> int:
        return sum(min(len(x), cap) + 1 for x in ids) // seq_len

    cap = max_doc_tokens
    if cap is None:
        cap = seq_len
        while rows_with(cap) < n_rows and cap < longest:
            cap += seq_len
    if rows_with(cap) < n_rows:
        raise ValueError(f"{len(docs)} held-out documents give {rows_with(cap)} rows of {seq_len} tokens (at most "
                         f"{cap} tokens per document), {n_rows} asked: lower n_rows"
                         + (" or raise max_doc_tokens" if max_doc_tokens else ""))
    kept, got = [], 0
    for x in ids:  # only as many documents as the rows need
        kept.append(x[:cap])
        got += len(kept[-1]) + 1
        if got >= n_rows * seq_len:
            break
    return pack_documents(kept, seq_len, tokenizer.eos_id)[:n_rows]


def train_set_loss(loss_fn: Callable, params: Any, train_arrays: Mapping[str, np.ndarray],
                   batch_size: int = 32) -> dict[str, float]:
    """Training-set loss of trained `params`: the token-weighted mean of `loss_fn` over every row of the training
    split (`evaluate.eval_loss`: loss, perplexity, accuracy, tokens).

    Chosen over the mean of the logged per-step losses because it scores one model (the final one, not a blend
    of the parameters seen during the last epoch), weights every target token once, and uses the same function
    and weighting as the held-out loss, so the two are directly comparable (their gap is the generalisation gap).
    The trainer's last `history` entry is one batch's loss, not this. Pass the plain CE loss (no KD term);
    it is called without an rng, so without dropout."""
    return eval_loss(loss_fn, params, dict(train_arrays), batch_size)
