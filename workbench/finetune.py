"""Finetune a stored model on your own task in one call (`finetune`) or one command (`workbench finetune`).

    from workbench.finetune import finetune
    res = finetune("seq2seq", "demo/encdec", "pairs.jsonl", input_col="question", target_col="answer")
    print(res.summary)

Task kinds, the columns they read (names are arguments; the defaults are the prepared tasks' schemas), what
trains and what is measured on the held-out rows:

- ``seq2seq``: ``inputs`` -> ``targets``. The model as is: a decoder-only model learns the targets given the
  input as its prefix, an encoder-decoder the usual seq2seq loss. Metrics of greedy generations: exact_match,
  rougeL, token_f1 (`evaluate.text_metrics`).
- ``classification``: ``text`` (and optionally a second text, ``text_pair_col``) -> ``label`` (class ids, or
  names mapped to ids in sorted order). An encoder-only model built from the stored one (bidirectional stack,
  pooling, fresh head), softmax CE. Metrics: accuracy, macro_f1 (and f1 of class 1 when binary).
- ``regression``: the same texts -> a real ``label``; MSE. Metrics: pearson, spearman, mse.
- ``ranking``: ``query`` + ``candidates`` (a list per row) -> ``label``, the index of the relevant candidate.
  An encoder-only cross-encoder over ``query EOS candidate EOS``, listwise softmax CE. Metrics: mrr@10, recall@1.

Which model trains and with which loss is decided by one table, `RECIPES`, keyed by (kind of the stored model,
task kind). Data: any file `datasets` reads (JSONL, CSV, Parquet ...), a directory of split files, a hub name or
a prepared task name (`workbench.data.load_dataset_any`). The held-out split is the data's ``validation`` (else
``test``) split, else a seeded `eval_fraction` of the training rows (`FinetuneResult.heldout` says which).

A run lives in `out_dir` (the trainer's checkpoints, metrics, `finetune.json`); running the same call again
resumes from its latest checkpoint. Generative models (seq2seq) are also saved to the model store
(`workbench.zoo`); encoder-only models are kept with the trainer's checkpoint (`load_finetuned(out_dir)`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from workbench import adapt, encoder, evaluate, objectives, uncertainty, zoo
from workbench.config import EncDecConfig, EncoderOnlyConfig, GemmaConfig, config_from_dict, config_to_dict
from workbench.data import (
    DataError,
    load_dataset_any,
    model_tokenizer,
    tokenize_classification,
    tokenize_ranking,
    tokenize_seq2seq,
)
from workbench.data.files import atomic_path, resolve_cache
from workbench.models import model_for
from workbench.recipes import row_batches
from workbench.train import TrainConfig, restore_params, train

Params = dict[str, Any]
Config = GemmaConfig | EncDecConfig | EncoderOnlyConfig
TASK_KINDS = ("seq2seq", "classification", "regression", "ranking")
EVAL_SPLITS = ("validation", "test")  # the first one the data has is the held-out split
RESULT_FILE = "finetune.json"
MODEL_CONFIG_FILE = "model_config.json"
ROW = "__row__"  # column added to the loaded splits: 1-based row number in its file / split, for error messages


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything (besides data and model) that decides what a finetuning run computes."""

    task_kind: str
    columns: dict[str, str]
    pooling: str = "mean"
    pooling_heads: int = 4
    encoder_attention: str = "bidirectional"
    dropout: float = 0.1
    num_labels: int = 0
    decoder_attention: str = "causal"
    max_len: int = 128
    max_target_len: int = 64

    def relevant(self, model_kind: str) -> dict[str, Any]:
        """The settings that matter for this task and model kind (what a resumed run must agree on)."""
        keep = {"task_kind", "columns", "max_len"}
        if self.task_kind == "seq2seq":
            keep |= {"max_target_len"} | ({"decoder_attention"} if model_kind == "decoder" else set())
        else:
            keep |= {"pooling", "dropout", "encoder_attention"} | (
                {"pooling_heads"} if self.pooling == "attention" else set()) | (
                {"num_labels"} if self.task_kind == "classification" else set())
        return {k: v for k, v in dataclasses.asdict(self).items() if k in keep}


# ------------------------------------------------------------------------------------------- the one table
def _as_is(config: Config, params: Params, s: Settings, rng: jax.Array) -> tuple[Config, Params]:
    return config, params


def _head_config(stack: GemmaConfig, s: Settings) -> EncoderOnlyConfig:
    return EncoderOnlyConfig(encoder=stack, pooling=s.pooling, task=s.task_kind, num_labels=max(s.num_labels, 1),
                             dropout_rate=s.dropout, pooling_heads=s.pooling_heads,
                             causal=s.encoder_attention == "causal")


def _encoder_from_decoder(config: GemmaConfig, params: Params, s: Settings, rng: jax.Array
                          ) -> tuple[EncoderOnlyConfig, Params]:
    eo = _head_config(config, s)
    return eo, adapt.decoder_to_encoder_only(params, eo, rng)


def _encoder_from_encdec(config: EncDecConfig, params: Params, s: Settings, rng: jax.Array
                         ) -> tuple[EncoderOnlyConfig, Params]:
    eo = _head_config(config.encoder, s)
    return eo, adapt.encdec_to_encoder_only(params, config, eo, rng)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one (model kind, task kind) pair finetunes: the model that trains and its loss factory."""

    build: Callable[[Config, Params, Settings, jax.Array], tuple[Config, Params]]
    loss: Callable[[Config, Settings], objectives.LossFn]


def _decoder_seq2seq(config: GemmaConfig, s: Settings) -> objectives.LossFn:
    return objectives.decoder_seq2seq_loss(config, attention=s.decoder_attention)


def _of_config(factory: Callable[[Config], objectives.LossFn]) -> Callable[[Config, Settings], objectives.LossFn]:
    """A loss factory that needs only the model config, as a Recipe loss."""
    def loss(config: Config, s: Settings) -> objectives.LossFn:
        return factory(config)
    return loss


# (kind of the stored model, task kind) -> Recipe. The only place that looks at model kinds.
RECIPES: dict[tuple[str, str], Recipe] = {
    ("decoder", "seq2seq"): Recipe(_as_is, _decoder_seq2seq),
    ("encdec", "seq2seq"): Recipe(_as_is, _of_config(objectives.encdec_seq2seq_loss)),
    ("decoder", "classification"): Recipe(_encoder_from_decoder, _of_config(objectives.classification_loss)),
    ("encdec", "classification"): Recipe(_encoder_from_encdec, _of_config(objectives.classification_loss)),
    ("decoder", "regression"): Recipe(_encoder_from_decoder, _of_config(objectives.regression_loss)),
    ("encdec", "regression"): Recipe(_encoder_from_encdec, _of_config(objectives.regression_loss)),
    ("decoder", "ranking"): Recipe(_encoder_from_decoder, _of_config(objectives.ranking_loss)),  # listwise
    ("encdec", "ranking"): Recipe(_encoder_from_encdec, _of_config(objectives.ranking_loss)),
}


# ------------------------------------------------------------------------------------------------ result
@dataclasses.dataclass
class FinetuneResult:
    """What a finetuning run did and measured (`summary` is its one-line account)."""

    task_kind: str
    model: str  # as given
    source_kind: str  # kind of the stored model: decoder | encdec
    trained_kind: str  # kind that trained: decoder | encdec | encoder_only
    data: str
    heldout: str  # where the held-out rows come from
    n_train: int
    n_eval: int
    steps: int
    batch: int
    epochs: float  # steps * batch / n_train
    resumed_from: int  # step the run continued from (0: a fresh run)
    metrics: dict[str, float]
    train_loss: float | None
    out_dir: str
    checkpoint_dir: str
    saved_as: str | None  # store name (generative models), else None: the params are in checkpoint_dir
    label_names: list[str] | None = None  # classification with named labels: id -> name
    samples: list[dict] = dataclasses.field(default_factory=list)  # seq2seq: a few generations
    seconds: float = 0.0
    config: Config | None = dataclasses.field(default=None, repr=False)
    params: Params | None = dataclasses.field(default=None, repr=False)

    @property
    def summary(self) -> str:
        """One line: model, data, budget, held-out metrics and where the model went."""
        resumed = ("" if not self.resumed_from else f", resumed from step {self.resumed_from}"
                   if self.resumed_from < self.steps else ", trained before: evaluated again")
        mets = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
        where = (f"saved as {self.saved_as!r} in the model store" if self.saved_as
                 else f"params with the checkpoint in {self.checkpoint_dir} (workbench.finetune.load_finetuned)")
        kinds = self.source_kind + ("" if self.source_kind == self.trained_kind else f"->{self.trained_kind}")
        return (f"{self.task_kind} finetune of {self.model} ({kinds}) on {self.data}: {self.steps} steps x "
                f"{self.batch} ({self.epochs:.3g} epochs of {self.n_train} rows{resumed}); held-out {self.heldout}: "
                f"{mets}; {where}")

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("config", "params")}
        return {**d, "summary": self.summary}


# -------------------------------------------------------------------------------------------------- data
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(text).stem if os.sep in text or "." in text else text).strip("-.")


def _column_flags(task_kind: str, cols: dict[str, str | None]) -> dict[str, str]:
    """{role: column} of the roles the task kind reads (`text_pair` only when given)."""
    roles = {"seq2seq": ("input", "target"), "classification": ("text", "text_pair", "label"),
             "regression": ("text", "text_pair", "label"), "ranking": ("query", "candidates", "label")}[task_kind]
    return {r: cols[r] for r in roles if cols.get(r)}


def _load(data: str, columns: dict[str, str], task_kind: str, eval_split: str | None, eval_fraction: float,
          seed: int, cache: str | os.PathLike | None) -> tuple[Any, Any, str]:
    """(train Dataset, held-out Dataset, description of the held-out rows), columns checked."""
    local = Path(data).expanduser()
    for f in sorted(local.glob("*.*")) if local.is_dir() else [local] if local.is_file() else []:
        _check_rows(f)
    # a local file keeps its own columns (no hub-schema renaming): the column arguments name them
    ds = load_dataset_any(data, schema="ours" if local.exists() else None, cache=cache)
    return _split(ds, data, columns, task_kind, eval_split, eval_fraction, seed)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars (loading, selecting) while the block runs: the trainer's is the run's bar."""
    import datasets

    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not quiet:
            datasets.enable_progress_bars()


def _check_rows(path: Path) -> None:
    """DataError for a CSV/TSV file with a header but no rows, or a Parquet file without rows (the loader's own
    messages for these are obscure); JSON files are checked by the loader."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, "rb") as f:
            nonblank = 0
            for line in f:
                nonblank += bool(line.strip())
                if nonblank == 2:
                    break
        if nonblank == 1:
            raise DataError(f"{path}: a header but no rows (split {path.stem!r} is empty)")
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        if pq.ParquetFile(path).metadata.num_rows == 0:
            raise DataError(f"{path}: no rows (split {path.stem!r} is empty)")


def _split(ds: Any, data: str, columns: dict[str, str], task_kind: str, eval_split: str | None,
           eval_fraction: float, seed: int) -> tuple[Any, Any, str]:
    """Pick the training and held-out rows of a loaded dataset (see `_load`)."""
    if not hasattr(ds, "keys"):
        ds = {"train": ds}
    splits = list(ds.keys())
    if "train" not in ds:
        raise DataError(f"{data}: no 'train' split to finetune on (splits: {', '.join(splits)}); name the training "
                        f"file train.jsonl (or .csv, .parquet) or pass a single file")
    if eval_split is not None and eval_split not in ds:
        raise DataError(f"{data}: no split {eval_split!r} for the held-out rows (splits: {', '.join(splits)})")
    held = eval_split or next((s for s in EVAL_SPLITS if s in ds), None)
    for split in dict.fromkeys(["train", held or "train"]):
        have = ds[split].column_names
        missing = [f"{role} column {c!r}" for role, c in columns.items() if c not in have]
        if missing:
            flags = ", ".join(f"--{r.replace('_', '-')}-col" for r in columns)
            raise DataError(f"{data}: {task_kind} needs the {' and '.join(missing)}, but split {split!r} has columns "
                            f"{', '.join(have)}; name them with {flags}")
        if len(ds[split]) == 0:
            raise DataError(f"{data}: split {split!r} is empty (no rows)")
    train_ds, held_ds = (ds[x].add_column(ROW, list(range(1, len(ds[x]) + 1))) for x in ("train", held or "train"))
    if held is not None:
        return train_ds, held_ds, f"{held} split ({len(held_ds)} rows)"
    n = len(train_ds)
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    if n < 2:
        raise DataError(f"{data}: {n} row: too few to hold some out for evaluation; add rows or a validation split")
    k = min(n - 1, max(1, round(eval_fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    return (train_ds.select(np.sort(order[k:])), train_ds.select(np.sort(order[:k])),
            f"{k} of the {n} training rows ({eval_fraction:g}, seed {seed}; the data has no validation/test split)")


def _subset(d: Any, n: int | None, seed: int) -> Any:
    """The first `n` rows after `d.shuffle(seed=seed)` (all rows, shuffled, when n >= len(d)); None: `d`."""
    if n is None:
        return d
    if n <= 0:
        raise ValueError(f"max_train / max_eval must be positive, got {n}")
    return d.shuffle(seed=seed).select(range(min(n, len(d))))


def _labels(values: Sequence[Any], rows: Sequence[int], task_kind: str, where: str, *, num_labels: int = 0,
            num_candidates: int = 0, names: list[str] | None = None) -> np.ndarray:
    """Labels checked for the task kind (DataError naming the rows): int32 ids or float32 values."""
    vals = list(values)

    def at(idx: Sequence[int]) -> str:
        return ", ".join(f"row {rows[i]}: {vals[i]!r}" for i in idx[:5]) + (" ..." if len(idx) > 5 else "")

    if none := [i for i, v in enumerate(vals) if v is None]:
        raise DataError(f"{where}: {len(none)} row(s) without a label ({at(none)})")
    if names is not None:
        index = {n: i for i, n in enumerate(names)}
        if bad := [i for i, v in enumerate(vals) if str(v) not in index]:
            raise DataError(f"{where}: {len(bad)} label(s) not among the training labels {names} ({at(bad)})")
        return np.asarray([index[str(v)] for v in vals], np.int32)
    arr = np.asarray(vals)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{where}: labels must be numbers for {task_kind}, got e.g. {vals[0]!r}")
    if task_kind == "regression":
        if bad := np.flatnonzero(~np.isfinite(arr.astype(np.float64))).tolist():
            raise DataError(f"{where}: {len(bad)} non-finite label(s) ({at(bad)})")
        return arr.astype(np.float32)
    n = num_candidates or num_labels
    allowed = f"candidate indices 0..{n - 1}" if num_candidates else f"class ids 0..{n - 1}"
    f = arr.astype(np.float64)
    if (bad := np.flatnonzero(~np.isfinite(f) | (f != np.floor(f)) | (f < 0) | (f >= n)).tolist()):
        raise DataError(f"{where}: {len(bad)} label(s) out of range ({allowed}): {at(bad)}")
    return arr.astype(np.int32)


def _arrays(d: Any, split_name: str, s: Settings, tok: Any, data: str, names: list[str] | None
            ) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Token arrays of one split for the trainer and metrics; seq2seq also returns the reference texts."""
    c, where = s.columns, f"{data} ({split_name} rows, column {s.columns.get('label')!r})"
    if s.task_kind == "seq2seq":
        return tokenize_seq2seq(d, tok, s.max_len, s.max_target_len, c["input"], c["target"]), list(d[c["target"]])
    if s.task_kind == "ranking":
        cands = d[c["candidates"]]
        sizes = {len(x) if isinstance(x, list) else -1 for x in cands}
        if len(sizes) != 1 or min(sizes) < 2:
            raise DataError(f"{data}: column {c['candidates']!r} must hold lists of one length >= 2 in every row "
                            f"({split_name} rows have lengths {sorted(sizes)}; -1: not a list)")
        labels = _labels(d[c["label"]], d[ROW], "ranking", where, num_candidates=sizes.pop())
        d = d.select_columns([c["query"], c["candidates"]]).rename_columns(
            {k: v for k, v in ((c["query"], "query"), (c["candidates"], "candidates")) if k != v})
        return tokenize_ranking(d.add_column("label", labels.tolist()), tok, s.max_len) | {"labels": labels}, None
    labels = _labels(d[c["label"]], d[ROW], s.task_kind, where, num_labels=s.num_labels, names=names)
    fields = [c["text"]] + ([c["text_pair"]] if "text_pair" in c else [])
    arrays = tokenize_classification(d.select_columns(fields).add_column("label", labels.tolist()), tok, s.max_len,
                                     text_fields=fields)
    return {**arrays, "labels": labels}, None


def _label_setup(train_ds: Any, eval_ds: Any, label_col: str, task_kind: str, data: str,
                 num_labels: int | None) -> tuple[int, list[str] | None]:
    """(number of classes, label names for string labels) of a classification task."""
    if task_kind != "classification":
        return 0, None
    from workbench.data import TASKS

    values = list(train_ds[label_col])
    if any(isinstance(v, str) for v in values):
        names = sorted({str(v) for v in values if v is not None})
        if num_labels is not None and num_labels != len(names):
            raise DataError(f"{data}: num_labels={num_labels}, but the training rows have {len(names)} label names")
        return len(names), names
    if num_labels is None:
        meta = TASKS.get(str(data), {})
        num_labels = meta.get("num_labels") if meta.get("kind") == "classification" else None
    if num_labels is None:
        seen = [v for v in values + list(eval_ds[label_col]) if isinstance(v, int | float) and math.isfinite(v)]
        num_labels = int(max(seen, default=0)) + 1
    if num_labels < 2:
        raise DataError(f"{data}: classification needs at least 2 classes, the labels give {num_labels}; for real-"
                        f"valued labels use task kind 'regression'")
    return int(num_labels), None


# ------------------------------------------------------------------------------------------------ models
def _evaluate(task_kind: str, config: Config, params: Params, arrays: dict, refs: list[str] | None, tok: Any,
              batch: int, max_new_tokens: int, seed: int) -> tuple[dict[str, float], list[str] | None]:
    """Held-out metrics (`workbench.evaluate`) and, for seq2seq, the generations; encoder tasks add 'score'
    with its bootstrap interval over the held-out rows (`uncertainty.with_score`)."""
    if task_kind == "seq2seq":
        preds = evaluate.generate_texts(params, config, tok, arrays["inputs"], max_new_tokens, batch)
        return evaluate.text_metrics(preds, refs or []), preds
    per_row = arrays["tokens"].shape[1] if arrays["tokens"].ndim == 3 else 1
    out = evaluate.predict(encoder.scores_fn(config), params, {"tokens": arrays["tokens"]}, max(1, batch // per_row))
    metric = {"classification": evaluate.classification_metrics, "regression": evaluate.regression_metrics,
              "ranking": evaluate.ranking_metrics}[task_kind]
    return uncertainty.with_score(task_kind, metric(out, arrays["labels"]), out, arrays["labels"], seed=seed), None


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode() + np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()[:16]


def _latest_step(ckpt_dir: Path) -> int:
    return max((int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit()), default=0) if ckpt_dir.is_dir() else 0


def default_out_dir(task_kind: str, model: str, data: str, cache: str | os.PathLike | None = None) -> Path:
    """`<cache>/finetune/<task kind>-<model>-<data>-<hash>`: the same call lands in (and resumes) the same run."""
    ident = [os.path.abspath(x) if os.path.exists(x) else x for x in (model, data)]
    key = hashlib.sha256("\0".join(ident).encode()).hexdigest()[:8]
    return resolve_cache(cache) / "finetune" / f"{task_kind}-{_slug(str(model))}-{_slug(str(data))}-{key}"


def load_finetuned(out_dir: str | os.PathLike) -> tuple[Config, Params]:
    """(config, params) of a finetuning run's latest checkpoint (how encoder-only results are reloaded)."""
    cfg_file = Path(out_dir) / MODEL_CONFIG_FILE
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{out_dir}: not a finetuning run ({MODEL_CONFIG_FILE} missing)")
    return config_from_dict(json.loads(cfg_file.read_text())), restore_params(str(Path(out_dir) / "checkpoints"))


# ------------------------------------------------------------------------------------------------ the call
def finetune(task_kind: str, model: str | os.PathLike, data: str | os.PathLike, *,
             input_col: str = "inputs", target_col: str = "targets", text_col: str = "text",
             text_pair_col: str | None = None, label_col: str = "label", query_col: str = "query",
             candidates_col: str = "candidates", eval_split: str | None = None, eval_fraction: float = 0.1,
             max_train: int | None = None, max_eval: int | None = None, out_dir: str | os.PathLike | None = None,
             save_as: str | None = None, save: bool = True, steps: int | None = None, epochs: float | None = None,
             batch: int = 8, lr: float = 1e-4, warmup: int | None = None, weight_decay: float = 0.0,
             seed: int = 0, max_len: int = 128, max_target_len: int = 64, max_new_tokens: int | None = None,
             num_labels: int | None = None, pooling: str = "mean", pooling_heads: int = 4, dropout: float = 0.1,
             encoder_attention: str = "bidirectional", decoder_attention: str = "causal",
             data_seed: int | None = None, checkpoint_every: int | None = None,
             tokenizer: Any = None, cache: str | os.PathLike | None = None, progress: bool = True,
             allow_config_change: bool = False, callbacks: Sequence[Callable] = ()) -> FinetuneResult:
    """Finetune a stored model (`model`: store name or checkpoint directory) on `data` and evaluate it.

    task_kind: seq2seq | classification | regression | ranking (columns: see the module doc).
    Budget: `steps`, or `epochs` passes over the training rows (default 1 epoch: ceil(n_train / batch) steps).
    Held-out rows: `eval_split`, else the data's validation/test split, else a seeded `eval_fraction` of train.
    `max_train` / `max_eval`: the first n rows after `Dataset.shuffle(seed=data_seed)` (`data_seed`: `seed`).
    Encoder-only models (classification, regression, ranking): `pooling` 'mean' (or first, last, attention with
    `pooling_heads`), `dropout` 0.1 on the pooled vector before a fresh head (seeded by `seed`), the stack's
    `encoder_attention` 'bidirectional' (or 'causal'); `num_labels`: the prepared task's, else the largest
    label + 1 (string labels: their sorted names). Decoder-only seq2seq learns the targets given the input as
    prefix, with `decoder_attention` 'causal' by default because the KV-cached generation prefill is causal
    ('prefix': a bidirectional input in training only). Optimiser: AdamW, `warmup` steps (default 5% of the
    steps, at least 1), cosine decay to 10% of `lr`, `weight_decay`, gradient clipping at norm 1.
    Resumable: `out_dir` (default `default_out_dir(...)`) keeps the trainer's checkpoints every `checkpoint_every`
    steps (default steps // 10, within [10, 1000]) and at the end; the same call again continues (other
    settings there: `RunMismatchError`, unless `allow_config_change`). Generative models are saved to the store
    as `save_as` (default `finetuned/<out_dir name>`; `save=False`: not saved); encoder-only ones stay with the
    checkpoint (`load_finetuned(out_dir)`). `tokenizer`: a Tokenizer or SentencePiece path (default: a
    registered real model's own, e.g. 'gemma3-270m', else the prepared one).
    """
    t0 = time.perf_counter()
    if task_kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {task_kind!r}; known: {', '.join(TASK_KINDS)}")
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if (steps is not None and steps <= 0) or (epochs is not None and epochs <= 0) or batch <= 0:
        raise ValueError(f"steps, epochs and batch must be positive (got steps={steps}, epochs={epochs}, "
                         f"batch={batch})")
    if decoder_attention not in ("causal", "prefix"):
        raise ValueError(f"decoder_attention must be 'causal' or 'prefix', got {decoder_attention!r}")
    if encoder_attention not in ("bidirectional", "causal"):
        raise ValueError(f"encoder_attention must be 'bidirectional' or 'causal', got {encoder_attention!r}")
    data_seed = seed if data_seed is None else data_seed
    model, data = os.fspath(model), os.fspath(data)
    columns = _column_flags(task_kind, {"input": input_col, "target": target_col, "text": text_col,
                                        "text_pair": text_pair_col, "label": label_col, "query": query_col,
                                        "candidates": candidates_col})

    # data
    with _quiet_datasets():
        train_ds, eval_ds, heldout = _load(data, columns, task_kind, eval_split, eval_fraction, data_seed, cache)
        n_heldout = len(eval_ds)
        train_ds, eval_ds = _subset(train_ds, max_train, data_seed), _subset(eval_ds, max_eval, data_seed)
        if len(eval_ds) < n_heldout:
            heldout += f", {len(eval_ds)} of them used (shuffle seed {data_seed})"
        n_labels, names = _label_setup(train_ds, eval_ds, columns.get("label", ""), task_kind, data, num_labels)
        s = Settings(task_kind=task_kind, columns=columns, pooling=pooling, pooling_heads=pooling_heads,
                     encoder_attention=encoder_attention, dropout=dropout, num_labels=n_labels,
                     decoder_attention=decoder_attention, max_len=max_len, max_target_len=max_target_len)
        # default: the model's own tokenizer (a registered real model such as 'gemma3-270m'), else the prepared one
        tok = tokenizer if tokenizer is not None else model_tokenizer(str(model), cache)
        if isinstance(tok, str | os.PathLike):
            from workbench.data import Tokenizer

            tok = Tokenizer.load(tok)
        train_arr, _ = _arrays(train_ds, "training", s, tok, data, names)
        eval_arr, refs = _arrays(eval_ds, "held-out", s, tok, data, names)
    n_train, n_eval = len(next(iter(train_arr.values()))), len(next(iter(eval_arr.values())))
    if n_train < batch:
        raise DataError(f"{data}: {n_train} training rows < batch {batch}; lower the batch size (--batch)")

    # model: the one table decides what trains and how
    src_cfg, src_params = zoo.load(model)
    source_kind = model_for(src_cfg).kind
    recipe = RECIPES.get((source_kind, task_kind))
    if recipe is None:
        raise ValueError(f"no recipe to finetune a {source_kind} model for {task_kind}; known: "
                         f"{', '.join(f'{k}/{t}' for k, t in RECIPES)}")
    vocab = getattr(src_cfg, "decoder", src_cfg).vocab_size
    if tok.vocab_size > vocab:
        raise ValueError(f"the tokenizer has {tok.vocab_size} ids but model {model!r} only {vocab}: use the "
                         f"tokenizer the model was trained with")
    config, params = recipe.build(src_cfg, src_params, s, jax.random.key(seed))
    loss_fn = recipe.loss(config, s)

    # training (resumable)
    steps = steps or math.ceil((epochs or 1.0) * n_train / batch)
    run_dir = Path(out_dir) if out_dir is not None else default_out_dir(task_kind, model, data, cache)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved_as = (save_as or f"finetuned/{run_dir.name}") if (save and model_for(config).generative) else None
    if saved_as:
        zoo.path(saved_as)  # an invalid store name fails now, not after training
    resumed_from = _latest_step(run_dir / "checkpoints")
    with atomic_path(run_dir / MODEL_CONFIG_FILE) as tmp:  # first, so that an interrupted run can be loaded too
        tmp.write_text(json.dumps(config_to_dict(config), indent=1))
    tc = TrainConfig(steps=steps, batch_size=batch, learning_rate=lr,
                     warmup_steps=min(steps, warmup if warmup is not None else max(1, steps // 20)),
                     weight_decay=weight_decay, seed=seed,
                     checkpoint_every=checkpoint_every or min(1000, max(10, steps // 10)), log_every=1)
    run_info = {"finetune": s.relevant(source_kind), "model": model, "source_kind": source_kind, "data": data,
                "heldout": heldout, "n_train": n_train, "train_digest": _digest(train_arr),
                "label_names": names}
    res = train(loss_fn, params, row_batches(train_arr, batch, seed), tc, out_dir=str(run_dir), progress=progress,
                run_info=run_info, allow_config_change=allow_config_change, callbacks=callbacks)

    # held-out metrics, saving
    metrics, preds = _evaluate(task_kind, config, res.params, eval_arr, refs, tok, 4 * batch,
                               max_new_tokens or max_target_len, seed)
    if saved_as:
        zoo.save(saved_as, config, jax.device_get(res.params))
    samples = []
    if preds is not None:
        samples = [{"input": i, "reference": r, "generated": p}
                   for i, r, p in zip(list(eval_ds[columns["input"]])[:5], refs or [], preds, strict=False)]
    result = FinetuneResult(
        task_kind=task_kind, model=model, source_kind=source_kind, trained_kind=model_for(config).kind, data=data,
        heldout=heldout, n_train=n_train, n_eval=n_eval, steps=res.step, batch=batch,
        epochs=res.step * batch / n_train, resumed_from=resumed_from, metrics=metrics,
        train_loss=res.history[-1]["loss"] if res.history else None, out_dir=str(run_dir),
        checkpoint_dir=res.checkpoint_dir, saved_as=saved_as, label_names=names, samples=samples,
        seconds=time.perf_counter() - t0, config=config, params=res.params)
    with atomic_path(run_dir / RESULT_FILE) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=1, default=str))
    return result
