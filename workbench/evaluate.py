"""Evaluation: batched jitted loss / prediction over numpy arrays, task metrics, generation scoring."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from workbench.config import EncDecConfig, GemmaConfig
from workbench.data.baselines import break_ties, mrr_at_k, rouge_l, token_f1
from workbench.generate import generate

Arrays = dict[str, np.ndarray]


def _check_arrays(arrays: Arrays) -> int:
    if not arrays:
        raise ValueError("no arrays to evaluate")
    n = {k: len(v) for k, v in arrays.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"arrays differ in length: {n}")
    count = next(iter(n.values()))
    if count == 0:
        raise ValueError("cannot evaluate on an empty split")
    return count


def _chunks(arrays: Arrays, batch_size: int):
    """Fixed-size batches (the last one filled with all-zero, i.e. all-padding, rows) and their real sizes."""
    n = _check_arrays(arrays)
    for start in range(0, n, batch_size):
        real = int(min(batch_size, n - start))
        batch = {}
        for k, v in arrays.items():
            v = np.asarray(v)[start:start + real]
            fill = np.zeros((batch_size - real, *v.shape[1:]), v.dtype)
            batch[k] = np.concatenate([v, fill]) if real < batch_size else v
        yield batch, real


_JITTED: OrderedDict[tuple[int, str], tuple[Callable, Callable]] = OrderedDict()
_JITTED_MAX = 32


def _jit_once(fn: Callable, kind: str, wrap: Callable[[Callable], Callable]) -> Callable:
    """`jax.jit(wrap(fn))`, built once per `fn` object and reused, so that evaluating one model's function every
    few training steps compiles once instead of at every call. Keeps the last `_JITTED_MAX` functions (held
    strongly, so an `id` cannot be reused while its entry lives)."""
    key = (id(fn), kind)
    hit = _JITTED.get(key)
    if hit is not None and hit[0] is fn:
        _JITTED.move_to_end(key)
        return hit[1]
    jfn = jax.jit(wrap(fn))
    _JITTED[key] = (fn, jfn)
    while len(_JITTED) > _JITTED_MAX:
        _JITTED.popitem(last=False)
    return jfn


def predict(fn: Callable[[Any, dict], jnp.ndarray], params: Any, arrays: Arrays, batch_size: int = 32) -> np.ndarray:
    """Concatenate `fn(params, batch)` over the rows of `arrays` (compiled once per `fn` and batch shape)."""
    jfn = _jit_once(fn, "predict", lambda f: f)
    outs = [np.asarray(jfn(params, b))[:real] for b, real in _chunks(arrays, batch_size)]
    return np.concatenate(outs, axis=0)


def eval_loss(loss_fn: Callable, params: Any, arrays: Arrays, batch_size: int = 32) -> dict[str, float]:
    """Token-weighted mean of a token-level loss factory's loss and accuracy over all rows (filler rows are
    all padding, so they carry no weight); perplexity = exp(loss). Compiled once per `loss_fn` and shape."""
    def token_sums(fn: Callable) -> Callable:
        def per_batch(p, batch):
            loss, m = fn(p, batch)
            return loss * m["tokens"], m["accuracy"] * m["tokens"], m["tokens"]
        return per_batch

    jfn = _jit_once(loss_fn, "eval_loss", token_sums)
    tot = np.zeros(3)
    for b, _ in _chunks(arrays, batch_size):
        tot += np.asarray(jax.device_get(jfn(params, b)), np.float64)
    if tot[2] == 0:
        raise ValueError("no target tokens to evaluate")
    loss, acc = tot[0] / tot[2], tot[1] / tot[2]
    return {"loss": float(loss), "perplexity": float(np.exp(loss)), "accuracy": float(acc), "tokens": float(tot[2])}


def rank_classify(loss_fn: Callable, params: Any, inputs_NxS: np.ndarray, candidates_CxT: np.ndarray,
                  batch_size: int = 32) -> np.ndarray:
    """[N, C] log-likelihood (summed over target tokens, EOS included) of each candidate answer given each input,
    under a seq2seq loss factory (`loss_fn(params, {'inputs', 'targets'})`, either model kind): rank
    classification of closed-set answers. Compiled once per `loss_fn` and batch shape."""
    def row_logliks(fn: Callable) -> Callable:
        def per_batch(p, batch):
            def one(inp_S, tgt_T):
                loss, m = fn(p, {"inputs": inp_S[None], "targets": tgt_T[None]})
                return -loss * m["tokens"]
            return jax.vmap(one)(batch["inputs"], batch["targets"])
        return per_batch

    candidates_CxT = np.asarray(candidates_CxT)
    if candidates_CxT.ndim != 2 or len(candidates_CxT) == 0:
        raise ValueError(f"candidates must be a non-empty [C, T] array of target rows, got {candidates_CxT.shape}")
    jfn = _jit_once(loss_fn, "rank_classify", row_logliks)
    n = len(inputs_NxS)
    out = np.zeros((n, len(candidates_CxT)))
    for c, cand_T in enumerate(candidates_CxT):
        arrays = {"inputs": np.asarray(inputs_NxS), "targets": np.broadcast_to(cand_T, (n, cand_T.shape[0])).copy()}
        out[:, c] = np.concatenate([np.asarray(jfn(params, b))[:real] for b, real in _chunks(arrays, batch_size)])
    return out


# --------------------------------------------------------------------------------------------- metrics
def classification_metrics(logits_NxC: np.ndarray, labels_N: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 of class 1 (binary) and macro-F1."""
    pred, labels = np.argmax(logits_NxC, -1), np.asarray(labels_N)
    out = {"accuracy": float(np.mean(pred == labels))}
    f1s = []
    for c in range(logits_NxC.shape[-1]):
        tp = np.sum((pred == c) & (labels == c))
        denom = np.sum(pred == c) + np.sum(labels == c)
        f1s.append(2 * tp / denom if denom else 0.0)
    out["macro_f1"] = float(np.mean(f1s))
    if logits_NxC.shape[-1] == 2:
        out["f1"] = float(f1s[1])
    return out


def regression_metrics(pred_N: np.ndarray, labels_N: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman (as GLUE's STS-B) and MSE."""
    pred, labels = np.asarray(pred_N, np.float64), np.asarray(labels_N, np.float64)
    const = np.std(pred) == 0
    return {"pearson": 0.0 if const else float(stats.pearsonr(pred, labels)[0]),
            "spearman": 0.0 if const else float(stats.spearmanr(pred, labels)[0]),
            "mse": float(np.mean((pred - labels) ** 2))}


def ranking_metrics(scores_NxC: np.ndarray, labels_N: np.ndarray, k: int = 10) -> dict[str, float]:
    """MRR@k and recall@1 of the relevant candidate; ties are broken at random with a fixed seed (the same
    rule as the TF-IDF baseline, so an all-equal score row is no free win)."""
    scores = break_ties(scores_NxC)
    rank = 1 + (scores > np.take_along_axis(scores, np.asarray(labels_N)[:, None], -1)).sum(-1)
    return {f"mrr@{k}": mrr_at_k(scores_NxC, labels_N, k), "recall@1": float(np.mean(rank == 1))}


def text_metrics(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Exact match (whitespace/case-normalised), ROUGE-L F and token F1, averaged."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} references")
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    return {"exact_match": float(np.mean([norm(p) == norm(r) for p, r in zip(preds, refs, strict=True)])),
            "rougeL": float(np.mean([rouge_l(p, r) for p, r in zip(preds, refs, strict=True)])),
            "token_f1": float(np.mean([token_f1(p, r) for p, r in zip(preds, refs, strict=True)]))}


def generate_texts(params: Any, config: GemmaConfig | EncDecConfig, tokenizer, inputs_NxS: np.ndarray,
                   max_new_tokens: int, batch_size: int = 32) -> list[str]:
    """Greedy generations for padded prompts (pad 0), decoded up to EOS."""
    out: list[str] = []
    for b, real in _chunks({"inputs": inputs_NxS}, batch_size):
        prompt = b["inputs"]
        toks = np.asarray(generate(params, config, prompt, max_new_tokens, prompt != 0))[:real]
        for row in toks:
            ids = [int(t) for t in row if t != 0]
            ids = ids[: ids.index(tokenizer.eos_id)] if tokenizer.eos_id in ids else ids
            out.append(tokenizer.decode(ids))
    return out
