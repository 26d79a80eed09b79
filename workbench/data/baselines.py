"""TF-IDF floors for every task, so later model numbers have something to beat.

classification: TF-IDF (word 1-2 grams) + logistic regression, C tuned on validation; WiC adds the cosine
between the two sentences and the target word; regression: ridge (Pearson/Spearman); ranking: TF-IDF cosine
between query and candidates (MRR@10 over the candidate list, and over the full definition corpus);
seq2seq (definition): copy the gloss of the nearest training input (TF-IDF), scored by ROUGE-L / token F1.

Chance floors (:func:`majority_baseline`): the training split's majority class (classification), its mean
(regression), a random ranking (ranking), and each task's most frequent training answer (text-to-text).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from workbench.data.tasks import TASKS, load_task


def _tfidf(**kw):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000, **kw)


def _best_logreg(xtr, ytr, xva, yva):
    from sklearn.linear_model import LogisticRegression

    best = None
    for c in (1.0, 10.0):
        m = LogisticRegression(C=c, max_iter=500).fit(xtr, ytr)
        acc = float((m.predict(xva) == yva).mean())
        if best is None or acc > best[0]:
            best = (acc, c, m)
    return best


def rouge_l(pred: str, ref: str) -> float:
    a, b = pred.lower().split(), ref.lower().split()
    if not a or not b:
        return 0.0
    dp = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            cur = dp[j]
            dp[j] = prev + 1 if x == y else max(dp[j], dp[j - 1])
            prev = cur
    lcs = dp[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


def token_f1(pred: str, ref: str) -> float:
    from collections import Counter

    a, b = Counter(pred.lower().split()), Counter(ref.lower().split())
    common = sum((a & b).values())
    if common == 0:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


def mrr_at_k(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """scores [N, C], labels [N] -> mean reciprocal rank of the positive, 0 beyond rank k.

    Ties are broken at random (fixed seed), so an all-zero score row ranks the positive uniformly.
    """
    scores = break_ties(scores)
    pos = scores[np.arange(len(labels)), labels][:, None]
    rank = 1 + (scores > pos).sum(1)
    return float(np.where(rank <= k, 1.0 / rank, 0.0).mean())


def break_ties(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.asarray(scores, np.float64) + np.random.default_rng(seed).uniform(0, 1e-9, np.shape(scores))


def tfidf_baseline(task_name: str, cache=None, split: str = "test") -> dict:
    """Fit on train (tune on validation), report on ``split``. Returns metric -> value (+ settings)."""
    from scipy import sparse

    t0 = time.time()
    kind = TASKS[task_name]["kind"]
    ds = load_task(task_name, cache)
    tr, va, te = ds["train"], ds["validation"], ds[split]
    out: dict = {"task": task_name, "split": split, "model": ""}
    if task_name == "wic":
        vec = _tfidf().fit(list(tr["text_a"]) + list(tr["text_b"]))

        def feats(d):
            a, b = vec.transform(d["text_a"]), vec.transform(d["text_b"])
            cos = np.asarray(a.multiply(b).sum(1))
            return sparse.hstack([a + b, abs(a - b), sparse.csr_matrix(cos)]).tocsr()

        acc, c, m = _best_logreg(feats(tr), np.asarray(tr["label"]), feats(va), np.asarray(va["label"]))
        out.update(
            model=f"tfidf(a+b,|a-b|,cos)+logreg C={c}",
            accuracy=float((m.predict(feats(te)) == np.asarray(te["label"])).mean()),
        )
    elif kind == "classification":
        from sklearn.metrics import f1_score

        vec = _tfidf().fit(tr["text"])
        acc, c, m = _best_logreg(
            vec.transform(tr["text"]),
            np.asarray(tr["label"]),
            vec.transform(va["text"]),
            np.asarray(va["label"]),
        )
        pred = m.predict(vec.transform(te["text"]))
        y = np.asarray(te["label"])
        out.update(
            model=f"tfidf+logreg C={c}",
            accuracy=float((pred == y).mean()),
            macro_f1=float(f1_score(y, pred, average="macro")),
            majority=majority_class(np.asarray(tr["label"]), y)["accuracy"],
        )
    elif kind == "regression":
        from scipy.stats import pearsonr, spearmanr
        from sklearn.linear_model import Ridge

        vec = _tfidf().fit(tr["text"])
        best = None
        for a in (0.3, 1.0, 3.0, 10.0):
            m = Ridge(alpha=a).fit(vec.transform(tr["text"]), tr["label"])
            r = pearsonr(m.predict(vec.transform(va["text"])), va["label"])[0]
            if best is None or r > best[0]:
                best = (r, a, m)
        pred, y = best[2].predict(vec.transform(te["text"])), np.asarray(te["label"])
        out.update(
            model=f"tfidf+ridge alpha={best[1]}",
            pearson=float(pearsonr(pred, y)[0]),
            spearman=float(spearmanr(pred, y)[0]),
            mse=float(((pred - y) ** 2).mean()),
        )
    elif kind == "ranking":
        from workbench.data.tasks import load_retrieval_corpus

        corpus = load_retrieval_corpus(cache)
        vec = _tfidf(stop_words="english").fit(corpus["text"])
        q = vec.transform(te["sentence"])
        cands = list(te["candidates"])
        c = len(cands[0])
        cm = vec.transform([x for cs in cands for x in cs])
        scores = np.asarray(cm.multiply(q[np.repeat(np.arange(len(cands)), c)]).sum(1)).reshape(-1, c)
        labels = np.asarray(te["label"])
        # full ranking over all definitions (the query word itself is not in any definition's text)
        docs = vec.transform(corpus["text"])
        ids = {d: i for i, d in enumerate(corpus["doc_id"])}
        pos_idx = np.asarray([ids[p] for p in te["positive_id"]])
        full_rr = []
        for i in range(0, q.shape[0], 256):
            sims = break_ties((q[i : i + 256] @ docs.T).toarray(), seed=i)
            pos = sims[np.arange(len(sims)), pos_idx[i : i + 256]][:, None]
            rank = 1 + (sims > pos).sum(1)
            full_rr.append(np.where(rank <= 10, 1.0 / rank, 0.0))
        full_mrr = float(np.concatenate(full_rr).mean())
        out.update(
            model="tfidf cosine (query sentence vs definition)",
            **{
                "mrr@10": mrr_at_k(scores, labels),
                "recall@1": float((break_ties(scores).argmax(1) == labels).mean()),
                "random_mrr@10": float(np.mean([1 / r for r in range(1, c + 1)])),
                "full_corpus_mrr@10": full_mrr,
            },
        )
    elif task_name in ("definition", "mixture"):
        vec = _tfidf().fit(tr["inputs"])
        sims = vec.transform(te["inputs"]) @ vec.transform(tr["inputs"]).T
        nn = np.asarray(sims.argmax(1)).ravel()
        pairs = list(zip([tr["targets"][int(i)] for i in nn], te["targets"], strict=True))
        out.update(
            model="nearest train input (tfidf) -> its target",
            rougeL=float(np.mean([rouge_l(p, r) for p, r in pairs])),
            token_f1=float(np.mean([token_f1(p, r) for p, r in pairs])),
            exact_match=float(np.mean([p == r for p, r in pairs])),
        )
    out["seconds"] = round(time.time() - t0, 1)
    return out


# ---------------------------------------------------------------------------------------------------------
# Chance floors


def _norm(s: str) -> str:
    """Whitespace/case normalisation of `evaluate.text_metrics`' exact match."""
    return " ".join(s.lower().split())


def majority_class(train_labels: Sequence[int], eval_labels: Sequence[int], num_labels: int | None = None) -> dict:
    """Always predict the training split's most frequent label (ties: the smallest) and score it on
    ``eval_labels`` with `evaluate.classification_metrics`' definitions: accuracy, macro-F1 over ``num_labels``
    classes (default: every label seen), and F1 of class 1 when binary."""
    tr, ev = np.asarray(train_labels, np.int64), np.asarray(eval_labels, np.int64)
    if not len(tr) or not len(ev):
        raise ValueError("majority_class needs non-empty train and eval labels")
    k = num_labels or int(max(tr.max(), ev.max())) + 1
    label = int(np.bincount(tr, minlength=k).argmax())
    share = float(np.mean(ev == label))
    f1 = [2 * share / (share + 1) if c == label and share > 0 else 0.0 for c in range(k)]
    out = {"model": "majority class (train)", "majority_label": label, "accuracy": share,
           "macro_f1": float(np.mean(f1))}
    if k == 2:
        out["f1"] = f1[1]
    return out


def majority_answer(train_targets: Sequence[str], train_tasks: Sequence[str], eval_targets: Sequence[str],
                    eval_tasks: Sequence[str]) -> dict:
    """Per-task majority answer of a text-to-text mixture: for every task, always answer its most frequent
    training target, counted after `evaluate.text_metrics`' normalisation (ties: the first in sorted order; a task
    absent from train answers "").

    Returns exact_match (normalised, as `evaluate.text_metrics`), rougeL and token_f1 over all eval rows, the
    same ``per_task`` and the ``answers`` used."""
    if len(train_targets) != len(train_tasks) or len(eval_targets) != len(eval_tasks):
        raise ValueError("targets and tasks differ in length")
    if not len(eval_targets):
        raise ValueError("majority_answer needs eval rows")
    counts: dict[str, dict[str, Counter]] = {}  # task -> normalised answer -> its spellings
    for t, task in zip(train_targets, train_tasks, strict=True):
        counts.setdefault(task, {}).setdefault(_norm(t), Counter())[t] += 1

    def top(c: dict[str, int]) -> str:
        return min(c, key=lambda k: (-c[k], k))

    answers = {task: top(by_norm[top({n: sum(c.values()) for n, c in by_norm.items()})])
               for task, by_norm in counts.items()}
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for ref, task in zip(eval_targets, eval_tasks, strict=True):
        pred = answers.get(task, "")
        rows.setdefault(task, []).append((float(_norm(pred) == _norm(ref)), rouge_l(pred, ref), token_f1(pred, ref)))

    def mean(r: list) -> dict[str, float]:
        m = np.mean(np.asarray(r, np.float64), axis=0)
        return {"exact_match": float(m[0]), "rougeL": float(m[1]), "token_f1": float(m[2])}

    return {"model": "per-task majority answer (train)", **mean([x for r in rows.values() for x in r]),
            "per_task": {task: mean(r) for task, r in sorted(rows.items())},
            "answers": {task: answers.get(task, "") for task in sorted(rows)}}


def majority_baseline(task_name: str, cache=None, split: str = "test") -> dict:
    """Chance floor of a prepared task on ``split``: majority class (classification), the training mean
    (regression: MSE; Pearson/Spearman are 0), the expected score of a random ranking (ranking), or the
    per-task majority answer (seq2seq; the mixture's ``task`` column, else one task)."""
    kind = TASKS[task_name]["kind"]
    ds = load_task(task_name, cache)
    tr, te = ds["train"], ds[split]
    out: dict = {"task": task_name, "split": split}
    if kind == "classification":
        out.update(majority_class(tr["label"], te["label"], TASKS[task_name]["num_labels"]))
    elif kind == "regression":
        mean, y = float(np.mean(tr["label"])), np.asarray(te["label"], np.float64)
        out.update(model="training mean", prediction=mean, pearson=0.0, spearman=0.0,
                   mse=float(np.mean((y - mean) ** 2)))
    elif kind == "ranking":
        c = len(te["candidates"][0])  # the positive's rank is uniform over 1..c
        out.update({"model": "random ranking (expected)", "recall@1": 1.0 / c,
                    "mrr@10": float(sum(1 / r for r in range(1, min(c, 10) + 1)) / c)})
    else:
        def tasks(d) -> list[str]:
            return list(d["task"]) if "task" in d.column_names else [task_name] * len(d)

        out.update(majority_answer(tr["targets"], tasks(tr), te["targets"], tasks(te)))
    return out
