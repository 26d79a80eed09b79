"""Text embeddings from an encoder-only Gemma (the EmbeddingGemma use): encode, rank, search, label checks.

    vecs = encode_texts(params, cfg, tok, ["a sentence", "another one"])      # [N, D], unit L2 norm
    idx, scores = rank(encode_texts(params, cfg, tok, queries), vecs, k=10)   # cosine similarity, best first
    hits = search(params, cfg, tok, "bank: we sat on the river bank", corpus_texts, k=5)

Input format: each text becomes ``ids + [EOS]``, right-padded with 0, the same layout as
`workbench.data.tokenize_classification` (no BOS), so a model finetuned on the tasks embeds texts the way it
saw them. The vector is the encoder's pooled representation (`encoder.embed`: the config's pooling, no head,
no dropout), L2-normalised, so a dot product is a cosine similarity.

Bad input raises at once and names the offending items:
- `texts` not a list/tuple of strings (a bare string is refused: iterating it would embed characters);
- an empty list, or an empty / whitespace-only text (nothing to pool);
- over-long text: a text with more than ``max_len - 1`` tokens (room for the EOS) raises ValueError unless
  ``overflow="truncate"``, which keeps the **first** ``max_len - 1`` tokens and appends EOS (the rule
  `tokenize_classification` uses). Silent truncation is opt-in because it changes what is embedded.
`check_labels` validates finetuning labels against a task's label set before any training starts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from workbench import encoder
from workbench.config import EncoderOnlyConfig

Params = dict[str, Any]
OVERFLOW = ("error", "truncate")
# Known label ranges of regression tasks (checked by `check_labels` when given the task's name).
REGRESSION_RANGES: dict[str, tuple[float, float]] = {"sentiment_regression": (-4.0, 4.0)}
_SHOW = 5  # offending items named in an error message


def _preview(items: Sequence[Any]) -> str:
    head = ", ".join(str(i) for i in items[:_SHOW])
    return head + (f", ... ({len(items)} in all)" if len(items) > _SHOW else "")


def _check_texts(texts: Any, what: str = "texts") -> list[str]:
    if isinstance(texts, str | bytes):
        raise TypeError(f"{what} must be a list of strings, got a single {type(texts).__name__}: wrap it in a "
                        f"list ([text])")
    if not isinstance(texts, Sequence) and not hasattr(texts, "__iter__"):
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what} is empty: nothing to encode")
    if bad := [i for i, t in enumerate(texts) if not isinstance(t, str)]:
        raise TypeError(f"{what} must hold strings; item(s) {_preview(bad)} are "
                        f"{type(texts[bad[0]]).__name__}")
    if empty := [i for i, t in enumerate(texts) if not t.strip()]:
        raise ValueError(f"{what}: empty or whitespace-only text at index {_preview(empty)}")
    return texts


def tokenize_texts(tokenizer, texts: Sequence[str], max_len: int, overflow: str = "error") -> np.ndarray:
    """int32 [N, L] rows ``ids + [EOS]`` right-padded with 0; L = the longest row rounded up to a multiple of 8
    (at most `max_len`), so short batches do not pay for `max_len`. See the module doc for the overflow rule."""
    if overflow not in OVERFLOW:
        raise ValueError(f"overflow must be one of {OVERFLOW}, got {overflow!r}")
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2 (one token and EOS), got {max_len}")
    texts = _check_texts(texts)
    ids = tokenizer.encode_batch(texts)
    if none := [i for i, x in enumerate(ids) if not x]:
        raise ValueError(f"texts at index {_preview(none)} tokenize to no tokens")
    long = [(i, len(x)) for i, x in enumerate(ids) if len(x) > max_len - 1]
    if long and overflow == "error":
        raise ValueError(f"{len(long)} text(s) longer than max_len - 1 = {max_len - 1} tokens (index: length "
                         f"{_preview([f'{i}: {n}' for i, n in long])}); raise max_len or pass "
                         f"overflow='truncate' (keeps the first {max_len - 1} tokens, then EOS)")
    rows = [x[: max_len - 1] + [tokenizer.eos_id] for x in ids]
    width = min(max_len, 8 * math.ceil(max(len(r) for r in rows) / 8))
    out = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


@functools.lru_cache(maxsize=16)
def _embed_fn(config: EncoderOnlyConfig):
    return jax.jit(lambda p, t: encoder.embed(p, config, t, t != 0).astype(jnp.float32))


def normalize(vecs: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero)."""
    vecs = np.asarray(vecs, np.float32)
    return vecs / np.maximum(np.linalg.norm(vecs, axis=-1, keepdims=True), eps)


def encode_texts(params: Params, config: EncoderOnlyConfig, tokenizer, texts: Sequence[str], max_len: int = 64,
                 batch_size: int = 32, overflow: str = "error", normalized: bool = True) -> np.ndarray:
    """float32 [N, D] embeddings of `texts` with `config.pooling` (unit L2 norm unless `normalized=False`).

    Batches have a fixed size (the last one is filled with all-padding rows), so one call compiles once.
    """
    if not isinstance(config, EncoderOnlyConfig):
        raise TypeError(f"config must be an EncoderOnlyConfig, got {type(config).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokens = tokenize_texts(tokenizer, texts, max_len, overflow)
    fn, n = _embed_fn(config), len(tokens)
    bs = min(batch_size, n)
    outs = []
    for start in range(0, n, bs):
        chunk = tokens[start:start + bs]
        if len(chunk) < bs:
            chunk = np.concatenate([chunk, np.zeros((bs - len(chunk), chunk.shape[1]), np.int32)])
        outs.append(np.asarray(fn(params, chunk))[: min(bs, n - start)])
    vecs = np.concatenate(outs)
    return normalize(vecs) if normalized else vecs


def rank(query_vecs: np.ndarray, corpus_vecs: np.ndarray, k: int = 10, chunk: int = 1024
         ) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` corpus rows per query by dot product (cosine for normalised vectors): (indices [Q, k] int64,
    scores [Q, k] float32), best first; ties go to the lower corpus index. A 1-D query is one row; `k` is
    capped at the corpus size."""
    q = np.asarray(query_vecs, np.float32)
    c = np.asarray(corpus_vecs, np.float32)
    q = q[None] if q.ndim == 1 else q
    if q.ndim != 2 or c.ndim != 2:
        raise ValueError(f"query_vecs must be [Q, D] (or [D]) and corpus_vecs [N, D]; got {q.shape} and {c.shape}")
    if q.shape[0] == 0 or c.shape[0] == 0:
        raise ValueError(f"nothing to rank: {q.shape[0]} queries, {c.shape[0]} corpus rows")
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"dimension mismatch: queries have {q.shape[1]}, corpus rows {c.shape[1]}")
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), c.shape[0])
    idx_out, score_out = [], []
    for s in range(0, q.shape[0], chunk):
        sims = q[s:s + chunk] @ c.T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # stable: equal scores keep index order
        idx_out.append(order)
        score_out.append(np.take_along_axis(sims, order, axis=1))
    return np.concatenate(idx_out).astype(np.int64), np.concatenate(score_out).astype(np.float32)


def search(params: Params, config: EncoderOnlyConfig, tokenizer, query: str, corpus_texts: Sequence[str],
           k: int = 10, *, max_len: int = 64, batch_size: int = 32, overflow: str = "error",
           corpus_vecs: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The `k` corpus texts closest to `query`: [{'rank', 'index', 'score', 'text'}], best first.

    Pass `corpus_vecs` (from `encode_texts` on the same texts) to search a corpus many times without
    re-encoding it.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__} (use encode_texts + rank for many)")
    corpus_texts = _check_texts(corpus_texts, "corpus_texts")
    if corpus_vecs is None:
        corpus_vecs = encode_texts(params, config, tokenizer, corpus_texts, max_len, batch_size, overflow)
    elif len(corpus_vecs) != len(corpus_texts):
        raise ValueError(f"corpus_vecs has {len(corpus_vecs)} rows for {len(corpus_texts)} corpus texts")
    qv = encode_texts(params, config, tokenizer, [query], max_len, batch_size, overflow)
    idx, scores = rank(qv, corpus_vecs, k)
    return [{"rank": r + 1, "index": int(i), "score": float(s), "text": corpus_texts[int(i)]}
            for r, (i, s) in enumerate(zip(idx[0], scores[0], strict=True))]


def check_labels(labels: Any, task_meta: Mapping[str, Any] | str, *, num_candidates: int | None = None
                 ) -> np.ndarray:
    """Validate finetuning labels against a task's label set; returns them as int32 / float32.

    `task_meta` is a `workbench.data.TASKS` entry (needs 'kind', and 'num_labels' for classification) or a
    task name. classification: integers in [0, num_labels); regression: finite numbers (within
    `label_range` of the meta, or `REGRESSION_RANGES[name]` for a known task); ranking: the index of the
    relevant candidate, an integer in [0, num_candidates). Raises ValueError naming the offending positions
    and values, and the allowed set.
    """
    name = None
    if isinstance(task_meta, str):
        from workbench.data import TASKS

        if task_meta not in TASKS:
            raise KeyError(f"unknown task {task_meta!r}; known: {', '.join(TASKS)}")
        name, task_meta = task_meta, TASKS[task_meta]
    kind = task_meta.get("kind")
    where = f"task {name or task_meta.get('name', '?')!r} ({kind})"
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{where}: labels must be a non-empty 1-D sequence, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: labels must be numbers, got dtype {arr.dtype}")

    def fail(bad: np.ndarray, allowed: str) -> None:
        pos = np.flatnonzero(bad).tolist()
        vals = [f"[{i}]={arr[i].item()!r}" for i in pos]
        raise ValueError(f"{where}: {len(pos)} label(s) outside {allowed}: {_preview(vals)}")

    if kind in ("classification", "ranking"):
        if kind == "classification":
            n = int(task_meta.get("num_labels") or 0)
            if n < 2:
                raise ValueError(f"{where}: task meta has num_labels={n}; a classification task needs >= 2")
            names = task_meta.get("label_names")
            allowed = f"{{0, ..., {n - 1}}}" + (f" ({', '.join(map(str, names))})" if names else "")
        else:
            if num_candidates is None:
                raise ValueError(f"{where}: pass num_candidates to check ranking labels")
            n, allowed = int(num_candidates), f"candidate indices {{0, ..., {int(num_candidates) - 1}}}"
        integral = np.isfinite(arr) & (np.floor(arr) == arr) if arr.dtype.kind == "f" else np.ones(arr.shape, bool)
        if not integral.all():
            fail(~integral, f"integers {allowed}")
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            fail(bad, allowed)
        return arr.astype(np.int32)
    if kind == "regression":
        vals = arr.astype(np.float64)
        if not np.isfinite(vals).all():
            fail(~np.isfinite(vals), "finite numbers")
        lo, hi = task_meta.get("label_range") or REGRESSION_RANGES.get(name or task_meta.get("name", ""),
                                                                       (-np.inf, np.inf))
        bad = (vals < lo) | (vals > hi)
        if bad.any():
            fail(bad, f"the range [{lo:g}, {hi:g}]")
        return vals.astype(np.float32)
    raise ValueError(f"{where}: labels can be checked for classification, regression and ranking tasks only")
