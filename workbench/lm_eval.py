"""Held-out language-model evaluation: documents sampled across every corpus source, loss in nats per token and
bits per byte (comparable across tokenizers).

`sample_documents` draws validation documents round-robin over the sources (in a seeded order), so that no
single source (e.g. the first rows of the split) dominates. `heldout_rows` turns each document into one row:
BOS + its first `seq_len - 1` tokens, right-padded. `lm_heldout` scores a decoder-only model on those rows with
the training loss (`objectives.causal_lm_loss`) and divides the summed nats by the UTF-8 bytes of the scored
text for bits per byte.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench import evaluate, objectives
from workbench.config import GemmaConfig
from workbench.data.pipeline import pad_to


def sample_documents(texts: Sequence[str], sources: Sequence[str], n: int, seed: int = 0) -> list[dict[str, str]]:
    """`n` documents drawn round-robin over the sources (each source's documents in a seeded random order);
    a source that runs out is skipped. Returns [{'text', 'source'}]."""
    if len(texts) != len(sources):
        raise ValueError(f"{len(texts)} texts but {len(sources)} sources")
    if n <= 0 or n > len(texts):
        raise ValueError(f"n must be in 1..{len(texts)}, got {n}")
    rng = np.random.default_rng(seed)
    by_source: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        by_source.setdefault(s, []).append(i)
    queues = {s: list(rng.permutation(ix)) for s, ix in sorted(by_source.items())}
    order = list(rng.permutation(sorted(queues)))
    out: list[dict[str, str]] = []
    while len(out) < n:
        for s in order:
            if queues[s] and len(out) < n:
                i = int(queues[s].pop())
                out.append({"text": texts[i], "source": sources[i]})
    return out


def heldout_rows(tokenizer: Any, texts: Sequence[str], seq_len: int) -> tuple[np.ndarray, int]:
    """(rows [N, seq_len] = BOS + the first seq_len - 1 tokens of each text, right-padded with pad 0; UTF-8
    bytes of the text those predicted tokens spell)."""
    ids = [tokenizer.encode(t)[: seq_len - 1] for t in texts]
    if any(not x for x in ids):
        raise ValueError("an empty document has no tokens to score")
    n_bytes = sum(len(tokenizer.decode(x).encode("utf-8")) for x in ids)
    rows = pad_to([[tokenizer.bos_id, *x] for x in ids], seq_len, tokenizer.pad_id)
    return rows, n_bytes


def lm_heldout(params: Any, config: GemmaConfig, rows_NxL: np.ndarray, n_bytes: int,
               batch_size: int = 8) -> dict[str, float]:
    """Causal-LM loss on held-out rows: nats per token, perplexity, next-token accuracy, bits per byte."""
    m = evaluate.eval_loss(objectives.causal_lm_loss(config), params, {"tokens": rows_NxL}, batch_size)
    return {"nats_per_token": m["loss"], "perplexity": m["perplexity"], "accuracy": m["accuracy"],
            "tokens": m["tokens"], "bytes": float(n_bytes),
            "bits_per_byte": m["loss"] * m["tokens"] / (math.log(2) * n_bytes)}


# ----------------------------------------------------------------------------------------- count floors
FLOOR_LAMBDAS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
STANDIN_BIGRAM_MARGIN = 0.3  # nats/token a pretrained stand-in must sit below its bigram floor (the quality bar)


def _pairs(rows_NxL: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(context, target) token pairs scored by `objectives.causal_lm_loss`: every position whose target is not pad."""
    rows = np.asarray(rows_NxL, np.int64)
    ctx, tgt = rows[:, :-1].ravel(), rows[:, 1:].ravel()
    keep = tgt != 0
    return ctx[keep], tgt[keep]


def ngram_floors(train_rows_NxL: np.ndarray, eval_rows_MxL: np.ndarray, vocab_size: int,
                 lambdas: Sequence[float] = FLOOR_LAMBDAS) -> dict[str, float]:
    """Held-out nats/token of two count models fitted on `train_rows` and scored on the same target positions as
    `objectives.causal_lm_loss` (non-pad targets of `eval_rows`):

    * unigram: add-one smoothed token frequencies, p(w) = (c(w) + 1) / (N + V);
    * bigram: p(w | v) = lam * c(v, w) / c(v) + (1 - lam) * p_unigram(w) (the unigram alone where v was never
      a context), with `lam` the best of `lambdas` **on the evaluation rows**: the bigram model's best case, so
      a model that beats it beats any of these interpolations.

    Returns {'unigram', 'bigram', 'bigram_lambda', 'train_tokens', 'eval_tokens'}.
    """
    ctx, tgt = _pairs(train_rows_NxL)
    ectx, etgt = _pairs(eval_rows_MxL)
    if not len(tgt) or not len(etgt):
        raise ValueError("ngram_floors: no scored (non-pad) target positions in the training or evaluation rows")
    top = max(int(ctx.max()), int(tgt.max()), int(ectx.max()), int(etgt.max()))
    if top >= vocab_size:
        raise ValueError(f"ngram_floors: token id {top} >= vocab_size {vocab_size}")
    uni = (np.bincount(tgt, minlength=vocab_size) + 1.0) / (len(tgt) + vocab_size)
    codes, counts = np.unique(ctx * vocab_size + tgt, return_counts=True)
    ctx_counts = np.bincount(ctx, minlength=vocab_size).astype(np.float64)
    ecode = ectx * vocab_size + etgt
    pos = np.clip(np.searchsorted(codes, ecode), 0, len(codes) - 1)
    pair = np.where(codes[pos] == ecode, counts[pos], 0).astype(np.float64)
    seen = ctx_counts[ectx] > 0
    ml = np.divide(pair, ctx_counts[ectx], out=np.zeros_like(pair), where=seen)
    best = None
    for lam in lambdas:
        p = np.where(seen, lam * ml + (1.0 - lam) * uni[etgt], uni[etgt])
        nats = float(-np.mean(np.log(p)))
        if best is None or nats < best[0]:
            best = (nats, float(lam))
    assert best is not None
    return {"unigram": float(-np.mean(np.log(uni[etgt]))), "bigram": best[0], "bigram_lambda": best[1],
            "train_tokens": int(len(tgt)), "eval_tokens": int(len(etgt))}
