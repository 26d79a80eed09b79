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
