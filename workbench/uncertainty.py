"""Intervals for task scores: over seeds when a cell has several, over test examples when it has one.

A task score in the report carries a 95% interval. With >= 2 seeds it is the t-interval of the per-seed scores
(training and test-sampling noise together, `report.interval`); with one seed it is the bootstrap percentile
interval of that run's score over its test examples (`bootstrap_primary`, recorded by the run), which says how
much the test subset alone could move the number. `summarise` picks between them and names which it used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench.data.baselines import break_ties

ALPHA = 0.05
N_BOOT = 1000
PRIMARY = {"classification": "accuracy", "regression": "pearson", "ranking": "mrr@10"}  # each task kind's score


def bootstrap(stat: Callable[[np.ndarray], float], n: int, *, alpha: float = ALPHA, n_boot: int = N_BOOT,
              seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `stat(idx)` over `n_boot` resamples `idx` of range(n) drawn with replacement."""
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = np.asarray([stat(rng.integers(0, n, n)) for _ in range(n_boot)], np.float64)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return float("nan"), float("nan")
    return float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))


def per_example_primary(kind: str, out: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray | None:
    """The primary metric's per-example terms (accuracy: correct; ranking: reciprocal rank within k, ties broken
    as `evaluate.ranking_metrics` breaks them); None for regression (Pearson is not a mean over examples)."""
    labels = np.asarray(labels)
    if kind == "classification":
        return (np.argmax(out, -1) == labels).astype(np.float64)
    if kind == "ranking":
        scores = break_ties(out)
        rank = 1 + (scores > np.take_along_axis(scores, labels[:, None], -1)).sum(-1)
        return np.where(rank <= k, 1.0 / rank, 0.0)
    return None


def bootstrap_primary(kind: str, out: np.ndarray, labels: np.ndarray, *, alpha: float = ALPHA,
                      n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval over test examples of the task's primary metric (accuracy, Pearson, MRR@10)."""
    terms = per_example_primary(kind, out, labels)
    if terms is not None:
        return bootstrap(lambda i: float(terms[i].mean()), len(terms), alpha=alpha, n_boot=n_boot, seed=seed)
    pred, y = np.reshape(np.asarray(out, np.float64), -1), np.asarray(labels, np.float64)

    def pearson(i: np.ndarray) -> float:
        a, b = pred[i], y[i]
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0

    return bootstrap(pearson, len(y), alpha=alpha, n_boot=n_boot, seed=seed)


def with_score(kind: str, metrics: dict[str, float], out: np.ndarray, labels: np.ndarray, *,
               seed: int = 0) -> dict[str, float]:
    """`metrics` plus 'score' (the task's primary metric) and 'score_lo' / 'score_hi' (its 95% bootstrap
    interval over the test examples: test sampling alone), as every encoder finetune records them."""
    lo, hi = bootstrap_primary(kind, out, labels, seed=seed)
    return {**metrics, "score": metrics[PRIMARY[kind]], "score_lo": lo, "score_hi": hi}


def summarise(scores: Sequence[float], bounds: Sequence[tuple[float, float]] | None = None, *,
              alpha: float = ALPHA) -> dict[str, float | int | str]:
    """{'mean', 'lo', 'hi', 'seeds', 'interval'}: the t-interval over seeds when there are >= 2, else the one
    run's recorded test-bootstrap `bounds`; 'interval' names which ('seeds', 'test bootstrap' or 'none')."""
    from workbench.report import interval  # the claims' t-interval

    x = np.asarray([s for s in scores if s is not None and np.isfinite(s)], np.float64)
    out: dict[str, float | int | str] = {"mean": float(x.mean()) if len(x) else float("nan"), "seeds": int(len(x))}
    if len(x) >= 2:
        lo, hi, _ = interval(float(x.mean()), float(x.std(ddof=1)), len(x), alpha)
        return {**out, "lo": lo, "hi": hi, "interval": "seeds"}
    if len(x) == 1 and bounds and all(np.isfinite(bounds[0])):
        return {**out, "lo": float(bounds[0][0]), "hi": float(bounds[0][1]), "interval": "test bootstrap"}
    return {**out, "lo": float("nan"), "hi": float("nan"), "interval": "none"}


def summarise_frame(runs: Any, by: Sequence[str], *, score: str = "score", chance: Mapping[str, float] | None = None,
                    alpha: float = ALPHA) -> Any:
    """One row per group of `runs` (a DataFrame with one row per run and seed): `by`, 'mean', 'lo', 'hi',
    'seeds', 'interval' (`summarise`, using the runs' '<score>_lo' / '<score>_hi' test-bootstrap bounds when a
    group has one seed) and, with `chance` (task -> score of a guess that ignores the input, keyed by the
    group's 'task'), 'chance' and 'above chance' (the interval's lower end above it)."""
    import pandas as pd

    rows = []
    for key, g in runs.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        have = {f"{score}_lo", f"{score}_hi"} <= set(g.columns)
        bounds = list(zip(g[f"{score}_lo"], g[f"{score}_hi"], strict=True)) if have else None
        row = {**dict(zip(by, key, strict=True)), **summarise(list(g[score]), bounds, alpha=alpha)}
        if chance is not None:
            c = chance.get(row.get("task"), float("nan"))
            row["chance"] = c
            row["above chance"] = bool(np.isfinite(c) and np.isfinite(row["lo"]) and row["lo"] > c)
        rows.append(row)
    return pd.DataFrame(rows)


def tree(frame: Any) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """`frame` (a `summarise_frame` table with a 'metric' column) as the numbers-only tree `record_metrics`
    takes: task -> model -> metric -> {'mean', 'seeds', 'lo', 'hi', 'chance', 'above_chance' (0/1),
    'over_seeds' (1: the interval is over seeds, 0: a test bootstrap)}; a missing number is left out."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for r in frame.to_dict("records"):
        stats: dict[str, float] = {"seeds": int(r["seeds"]), "above_chance": int(bool(r.get("above chance"))),
                                   "over_seeds": int(r["interval"] == "seeds")}
        for k in ("mean", "lo", "hi", "chance"):
            v = r.get(k)
            if v is not None and np.isfinite(v):
                stats[k] = float(v)
        out.setdefault(str(r["task"]), {}).setdefault(str(r["model"]), {})[str(r["metric"])] = stats
    return out
