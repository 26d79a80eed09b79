"""The Gemma Encoder study: one decoder made into encoders that differ in one knob, finetuned per task and seed.

Experiment logic behind `notebooks/08_real_encoder.ipynb` (Gemma 3 270M, the paper's own setting scaled down):

* `task_data` builds the fixed train / test subsets of a task as arrays (BOS-prefixed for real Gemma models,
  ranking candidates optionally cut to the positive plus the first negatives);
* `Variant` is one point of the design (attention mask, pooling, dropout on the pooled vector);
* `Study.run(task, variant, seed)` finetunes one encoder for whole epochs of its training set and evaluates it
  on the test subset, length-bucketed (rows sorted by length, padded to a multiple of 8); every finished run is
  stored atomically under `Study.store`, so an interrupted study resumes at the next unfinished run;
* `Study.paired(task, a, b, seeds)` gives the per-seed differences the claims registry judges;
* `Study.utilisation(wall)` says where the time went: seconds inside training / evaluation and the training
  FLOP/s against the machine's matmul peak.

The seed of a run sets the head's initialisation, the order of the training batches and the dropout stream;
the data subsets are fixed by `data_seed` and shared by every run, so differences between variants are paired.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from workbench import adapt, embed, encoder, evaluate, flops, objectives, real_gemma, results, uncertainty
from workbench.config import EncoderOnlyConfig, GemmaConfig
from workbench.data import TASKS, load_task, tokenize_classification, tokenize_ranking
from workbench.recipes import row_batches
from workbench.train import TrainConfig, train

Params = Any
PRIMARY = uncertainty.PRIMARY
ATTENTION = ("bidirectional", "causal")
BUCKET = 8  # evaluation rows are padded to a multiple of this many tokens


@dataclasses.dataclass(frozen=True)
class Variant:
    """One encoder design: attention mask, pooling, dropout rate on the pooled vector before the head."""

    attention: str = "bidirectional"
    pooling: str = "mean"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {self.attention!r}")
        if self.pooling not in ("first", "last", "mean", "attention"):
            raise ValueError(f"pooling must be first|last|mean|attention, got {self.pooling!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def replace(self, **changes: Any) -> Variant:
        return dataclasses.replace(self, **changes)


def subset(split: Any, n: int | None, seed: int) -> Any:
    """A fixed random subset of `n` rows of a `datasets` split (all rows, shuffled, when n is None)."""
    split = split.shuffle(seed=seed)
    return split if n is None else split.select(range(min(int(n), len(split))))


def _cut_candidates(d: Any, keep: int) -> Any:
    """Ranking rows with `keep` candidates: the positive and the first keep - 1 negatives, in their order."""
    cands, labels = [], []
    for cs, y in zip(d["candidates"], d["label"], strict=True):
        if keep > len(cs):
            raise ValueError(f"candidates={keep} but a row has only {len(cs)}")
        idx = sorted([y] + [i for i in range(len(cs)) if i != y][: keep - 1])
        cands.append([cs[i] for i in idx])
        labels.append(idx.index(y))
    return d.from_dict({"query": list(d["query"]), "candidates": cands, "label": labels})


def _subsets(task: str, n_train: int | None, n_test: int | None, seed: int, candidates: int | None,
             eval_split: str) -> tuple[Any, Any]:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    ds = load_task(task)
    tr, te = subset(ds["train"], n_train, seed), subset(ds[eval_split], n_test, seed)
    if TASKS[task]["kind"] == "ranking" and candidates is not None:
        tr, te = _cut_candidates(tr, candidates), _cut_candidates(te, candidates)
    if task == "wic":  # the target word goes in front of sentence A
        tr, te = (d.from_dict({"text_a": [f"{w}: {a}" for w, a in zip(d["word"], d["text_a"], strict=True)],
                               "text_b": d["text_b"], "label": d["label"]}) for d in (tr, te))
    return tr, te


def task_texts(task: str, *, n_train: int | None, n_test: int | None, seed: int = 0, candidates: int | None = None,
               eval_split: str = "test", **_: Any) -> list[str]:
    """Every text `task_data` would tokenize with the same arguments (to prune a vocabulary to them)."""
    out: list[str] = []
    for d in _subsets(task, n_train, n_test, seed, candidates, eval_split):
        for col in ("text", "text_a", "text_b", "query"):
            if col in d.column_names:
                out += list(d[col])
        if "candidates" in d.column_names:
            out += [c for cs in d["candidates"] for c in cs]
    return out


def task_data(task: str, tokenizer: Any, *, n_train: int | None, n_test: int | None, max_len: int,
              seed: int = 0, add_bos: bool = True, candidates: int | None = None, eval_split: str = "test",
              **_: Any) -> dict[str, Any]:
    """{'task', 'kind', 'num_labels', 'train', 'test', 'truncated'}: fixed subsets of the task's train split and
    of `eval_split` (stored as 'test'; 'validation' for tuning) (None: the whole split) as arrays
    {'tokens' [N, L] or [N, C, L], 'labels'}. 'truncated' is the fraction of rows that fill `max_len` (cut, or
    exactly that long). Extra keys (e.g. a preset's batch_size) are ignored."""
    tr, te = _subsets(task, n_train, n_test, seed, candidates, eval_split)
    meta = TASKS[task]
    kind = meta["kind"]
    out: dict[str, Any] = {"task": task, "kind": kind, "num_labels": max(int(meta.get("num_labels", 1)), 1)}
    full = []
    for name, d in (("train", tr), ("test", te)):
        a = (tokenize_ranking(d, tokenizer, max_len, add_bos=add_bos) if kind == "ranking"
             else tokenize_classification(d, tokenizer, max_len, add_bos=add_bos))
        embed.check_labels(a["labels"], meta, num_candidates=a["tokens"].shape[1] if kind == "ranking" else None)
        out[name] = a
        full.append(np.mean(a["tokens"][..., -1] != 0))
    out["truncated"] = float(np.mean(full))
    return out


def chance(data: Mapping[str, Any]) -> float:
    """The score of a guess that ignores the text: the training split's majority class on the test rows
    (classification), Pearson 0 (regression), the MRR@10 of a random order (ranking)."""
    kind, test = data["kind"], data["test"]
    if kind == "classification":
        majority = np.bincount(data["train"]["labels"]).argmax()
        return float(np.mean(test["labels"] == majority))
    if kind == "regression":
        return 0.0
    c = test["tokens"].shape[1]
    return sum(1.0 / r for r in range(1, min(c, 10) + 1)) / c  # E[1/rank] of a uniform rank, 0 beyond 10


def _lengths(tokens: np.ndarray) -> np.ndarray:
    """Non-pad length of each row ([N, L]) or of its longest candidate ([N, C, L]); right padding assumed."""
    nonpad = tokens != 0
    last = np.where(nonpad.any(-1), tokens.shape[-1] - np.argmax(nonpad[..., ::-1], axis=-1), 0)
    return last.reshape(tokens.shape[0], -1).max(axis=1)


def bucketed_predict(fn: Any, params: Params, tokens: np.ndarray, rows_per_batch: int) -> np.ndarray:
    """`fn(params, {'tokens': ...})` over `tokens` grouped by length, each group cut to its longest row rounded
    up to `BUCKET`; outputs back in the input order. Ranking inputs [N, C, L] batch rows_per_batch // C queries."""
    width = np.minimum(-(-_lengths(tokens) // BUCKET) * BUCKET, tokens.shape[-1]).clip(min=1)
    per = max(1, rows_per_batch // (tokens.shape[1] if tokens.ndim == 3 else 1))
    out: np.ndarray | None = None
    for w in np.unique(width):
        idx = np.nonzero(width == w)[0]
        part = evaluate.predict(fn, params, {"tokens": tokens[idx][..., :w]}, per)
        if out is None:
            out = np.zeros((len(tokens), *part.shape[1:]), part.dtype)
        out[idx] = part
    assert out is not None
    return out


@dataclasses.dataclass
class Study:
    """Finetuning runs of encoders made from one decoder (`stack`, `params`) on `data` (name -> `task_data`).

    Settings are shared by every run: `epochs` of each task's training subset (a number, or per task) at
    `batch_size` (int, or per task; `steps`, if set, fixes the number of updates instead), AdamW at
    `learning_rate` with a linear warm-up over `warmup_fraction` of the steps then cosine decay to a tenth,
    `weight_decay`, dropout `stack_dropout` inside the stack. `init(config, key)` replaces the default
    initialisation (the decoder `params` made bidirectional with a fresh head: `adapt.decoder_to_encoder_only`),
    e.g. an encoder-decoder's encoder or random weights.
    `store`: a folder where finished runs are kept (resume); `peak_flops`: the machine's matmul rate for the
    utilisation figures.
    """

    stack: GemmaConfig
    params: Params
    data: Mapping[str, Mapping[str, Any]]
    learning_rate: float = 3e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    epochs: float | Mapping[str, float] = 1.0
    batch_size: int | Mapping[str, int] = 16
    eval_rows: int = 64
    pooling_heads: int = 4
    stack_dropout: float = 0.0
    store: str | Path | None = None
    peak_flops: float | None = None
    steps: int | None = None
    init: Any = None
    runs: dict[tuple, dict] = dataclasses.field(default_factory=dict)
    kept: dict[tuple, Params] = dataclasses.field(default_factory=dict)
    _fns: dict = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or not 0 <= self.warmup_fraction < 1:
            raise ValueError("Study needs learning_rate > 0 and 0 <= warmup_fraction < 1")
        if isinstance(self.epochs, Mapping) and (missing := sorted(set(self.data) - set(self.epochs))):
            raise ValueError(f"epochs per task names no value for {missing}")
        if bad := [t for t in self.data if self.task_epochs(t) <= 0]:
            raise ValueError(f"Study needs epochs > 0 (not for {bad})")
        for task, d in self.data.items():
            top = max(int(d[split]["tokens"].max()) for split in ("train", "test"))
            if top >= self.stack.vocab_size:
                raise ValueError(f"{task}: token id {top} >= the model's vocabulary {self.stack.vocab_size}: the "
                                 "data was tokenized for another vocabulary (prune the model to the tokenizer's)")

    # -------------------------------------------------------------------------------------- pieces
    def config(self, task: str, v: Variant) -> EncoderOnlyConfig:
        d = self.data[task]
        return EncoderOnlyConfig(encoder=self.stack.replace(dropout_rate=self.stack_dropout), pooling=v.pooling,
                                 task=d["kind"], num_labels=d["num_labels"], dropout_rate=float(v.dropout),
                                 pooling_heads=self.pooling_heads, causal=v.attention == "causal")

    def task_epochs(self, task: str) -> float:
        """Passes over `task`'s training subset (`epochs`, or its entry when given per task)."""
        return float(self.epochs[task] if isinstance(self.epochs, Mapping) else self.epochs)

    def batch(self, task: str) -> int:
        return int(self.batch_size[task] if isinstance(self.batch_size, Mapping) else self.batch_size)

    def updates(self, task: str) -> int:
        """Updates of one run: `steps` if set, else `epochs` passes over the training subset (the last batch may
        wrap around)."""
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.task_epochs(task) * len(self.data[task]["train"]["labels"]) / self.batch(task)))

    def train_flops(self, task: str, v: Variant) -> float:
        """Matmul FLOPs of one run's training steps at the padded length (forward + backward = 3 x forward)."""
        tokens = self.data[task]["train"]["tokens"]
        seqs_per_step = self.batch(task) * (tokens.shape[1] if tokens.ndim == 3 else 1)
        per_token = 3.0 * flops.forward_flops_per_token(self.stack, tokens.shape[-1], "causal" if
                                                        v.attention == "causal" else "bidirectional",
                                                        lm_head=False)
        return self.updates(task) * seqs_per_step * tokens.shape[-1] * per_token

    def _scores_fn(self, cfg: EncoderOnlyConfig) -> Any:
        """`encoder.scores_fn(cfg)`, one object per config, so that `evaluate.predict` compiles it once."""
        if cfg not in self._fns:
            self._fns[cfg] = encoder.scores_fn(cfg)
        return self._fns[cfg]

    def _stored(self, task: str, v: Variant, seed: int) -> Path | None:
        if self.store is None:
            return None
        return Path(self.store) / f"{task}-{v.attention}-{v.pooling}-d{float(v.dropout):g}-s{seed}.json"

    # -------------------------------------------------------------------------------------- runs
    def run(self, task: str, v: Variant = Variant(), seed: int = 0, *, keep: bool = False) -> dict[str, float]:
        """Finetune and evaluate one encoder (cached in memory and under `store`); metrics of the test subset
        plus 'score' (the task's primary metric) with 'score_lo' / 'score_hi' (its 95% bootstrap interval over
        the test examples), timings and the training FLOP/s. `keep`: hold the finetuned
        parameters in `kept[(task, v, seed)]` (a cached run without them is trained again)."""
        key = (task, v, int(seed))
        if key in self.runs and (not keep or key in self.kept):
            return self.runs[key]
        path = self._stored(task, v, seed)
        if not keep and path is not None and path.is_file():
            self.runs[key] = results.read_json(path)
            return self.runs[key]
        d, cfg = self.data[task], self.config(task, v)
        kind = d["kind"]
        loss = {"classification": objectives.classification_loss, "regression": objectives.regression_loss,
                "ranking": lambda c: objectives.ranking_loss(c, listwise=True)}[kind](cfg)
        steps = self.updates(task)
        tc = TrainConfig(steps=steps, learning_rate=self.learning_rate,
                         warmup_steps=max(1, round(self.warmup_fraction * steps)), weight_decay=self.weight_decay,
                         seed=int(seed), checkpoint_every=steps, log_every=steps)
        key_ = jax.random.key(int(seed))
        init = (self.init(cfg, key_) if self.init is not None
                else adapt.decoder_to_encoder_only(self.params, cfg, key_))
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="encoder_study_") as tmp:
            res = train(loss, init, row_batches(d["train"], self.batch(task), int(seed)), tc, out_dir=tmp,
                        progress=False, checkpoints=False)
        jax.block_until_ready(res.params)
        t1 = time.perf_counter()
        out = bucketed_predict(self._scores_fn(cfg), res.params, d["test"]["tokens"], self.eval_rows)
        t2 = time.perf_counter()
        labels = d["test"]["labels"]
        m = (evaluate.classification_metrics(out, labels) if kind == "classification" else
             evaluate.regression_metrics(np.reshape(out, -1), labels) if kind == "regression" else
             evaluate.ranking_metrics(out, labels, k=10))
        fl = self.train_flops(task, v)
        m = {**uncertainty.with_score(kind, m, out, labels, seed=int(seed)), "steps": steps,
             "last_batch_loss": float(res.history[-1]["loss"]), "train_seconds": t1 - t0, "eval_seconds": t2 - t1,
             "train_flops": fl, "train_flops_per_s": fl / (t1 - t0)}
        self.runs[key] = m
        if keep:
            self.kept[key] = res.params
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            results.write_json(path, m)
        return m

    def scores(self, task: str, v: Variant, seeds: Sequence[int], metric: str = "score") -> list[float]:
        return [float(self.run(task, v, s)[metric]) for s in seeds]

    def paired(self, task: str, a: Variant, b: Variant, seeds: Sequence[int], metric: str = "score"
               ) -> dict[str, list[float]]:
        """{'values': a - b per seed, 'a': ..., 'b': ...}: both sides run on every seed."""
        va, vb = self.scores(task, a, seeds, metric), self.scores(task, b, seeds, metric)
        return {"values": [x - y for x, y in zip(va, vb, strict=True)], "a": va, "b": vb}

    def frame(self) -> Any:
        """Every run so far as a DataFrame (task, attention, pooling, dropout, seed, metrics...)."""
        import pandas as pd

        return pd.DataFrame([{"task": t, "attention": v.attention, "pooling": v.pooling, "dropout": v.dropout,
                              "seed": s, **m} for (t, v, s), m in self.runs.items()])

    def utilisation(self, wall_seconds: float) -> dict[str, float]:
        """`utilisation([self], wall_seconds, self.peak_flops)`."""
        return utilisation([self], wall_seconds, self.peak_flops)


def utilisation(studies: Sequence[Study], wall_seconds: float, peak_flops: float | None = None
                ) -> dict[str, float]:
    """Seconds inside the training / evaluation of the runs the studies hold, their share of `wall_seconds`, and
    the training FLOP/s (compilation included) against `peak_flops` (runs resumed from a store count too)."""
    ms = [m for st in studies for m in st.runs.values()]
    tr, ev = sum(m["train_seconds"] for m in ms), sum(m["eval_seconds"] for m in ms)
    fl = sum(m["train_flops"] for m in ms)
    out = {"wall_seconds": wall_seconds, "train_seconds": tr, "eval_seconds": ev,
           "fraction_in_steps": (tr + ev) / wall_seconds if wall_seconds > 0 else float("nan"),
           "train_flops_per_s": fl / tr if tr > 0 else float("nan")}
    if peak_flops:
        out["train_fraction_of_peak"] = out["train_flops_per_s"] / peak_flops
    return out


# ------------------------------------------------------------------------------------------ the design
def prepare(model: str, tasks: Mapping[str, Mapping[str, Any]], data_seed: int = 0, seed: int = 0
            ) -> tuple[GemmaConfig, Params, Any, dict[str, dict[str, Any]]]:
    """(decoder config, params, tokenizer, {task: task_data}): `model` (`real_gemma.load_base`: a registered
    real model or a random decoder preset) with its vocabulary pruned to the texts of the tasks' subsets;
    `tasks` maps a task to its `task_data` keywords (n_train, n_test, max_len, candidates...)."""
    config, params, tok = real_gemma.load_base(model, seed)
    texts = [t for task, spec in tasks.items() for t in task_texts(task, seed=data_seed, **spec)]
    config, params, tok = real_gemma.prune_to_texts(config, params, tok, texts)
    return config, params, tok, {task: task_data(task, tok, seed=data_seed, **spec) for task, spec in tasks.items()}


def design(default: Mapping[str, Any], variants: Mapping[str, Sequence[Mapping[str, Any]]]
           ) -> dict[str, dict[str, Variant]]:
    """{task: {name: Variant}}: 'default' plus each one-knob change, named '<knob>_<value>' (e.g.
    'attention_causal', 'pooling_attention', 'dropout_0')."""
    base = Variant(**default)
    out: dict[str, dict[str, Variant]] = {}
    for task, changes in variants.items():
        out[task] = {"default": base}
        for change in changes:
            if len(change) != 1:
                raise ValueError(f"{task}: a variant changes exactly one knob of the default, got {dict(change)}")
            (knob, value), = change.items()
            v = base.replace(**{knob: value})
            if v == base:
                raise ValueError(f"{task}: variant {dict(change)} equals the default")
            out[task][f"{knob}_{value:g}" if isinstance(value, float) else f"{knob}_{value}"] = v
    return out


def run_design(study: Study, plan: Mapping[str, Mapping[str, Variant]], seeds: Sequence[int],
               log: Any = print) -> Any:
    """Run every (task, variant, seed) of `plan` (seeds innermost, so one program serves consecutive runs);
    returns `study.frame()`."""
    for task, variants in plan.items():
        for name, v in variants.items():
            for s in seeds:
                m = study.run(task, v, s)
                if log is not None:
                    log(f"{task:22s} {name:18s} seed {s}: {PRIMARY[study.data[task]['kind']]} {m['score']:.4f} "
                        f"({m['train_seconds']:.0f} s train, {m['eval_seconds']:.0f} s eval)")
    return study.frame()


def claims(study: Study, plan: Mapping[str, Mapping[str, Variant]], seeds: Sequence[int],
           floors: Mapping[str, float] | None = None) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{task: {name: {'values', 'a', 'b'}}}: per seed, the default minus each variant ('attention_causal':
    bidirectional − causal, ...), and 'beats_tfidf': the default minus the task's floor in `floors`."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for task, variants in plan.items():
        base = variants["default"]
        out[task] = {name: study.paired(task, base, v, seeds) for name, v in variants.items() if name != "default"}
        if floors and task in floors:
            a = study.scores(task, base, seeds)
            out[task]["beats_tfidf"] = {"values": [x - floors[task] for x in a], "a": a, "b": [floors[task]] * len(a)}
    return out
