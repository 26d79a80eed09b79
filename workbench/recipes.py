"""Deterministic batch functions `get_batch(step) -> dict` for the trainer (one per objective), and a
fine-tuning recipe for encoder-only task heads.

Each batch depends only on (seed, step), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench import encoder
from workbench.config import EncoderOnlyConfig, GemmaConfig
from workbench.data.pipeline import UL2_MIXTURE, Denoiser, pad_to, prefix_lm_split, sample_denoiser, ul2_example
from workbench.evaluate import classification_metrics, predict, ranking_metrics, regression_metrics
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
    return (metrics on `eval_arrays`, trained params). Metrics follow GLUE / MS MARCO conventions."""
    loss = {"classification": classification_loss, "regression": regression_loss,
            "ranking": ranking_loss}[config.task](config)
    run = train(loss, params, row_batches(train_arrays, batch_size, train_config.seed), train_config,
                out_dir=out_dir, progress=progress)
    tokens = eval_arrays["tokens"]
    if config.task == "ranking":
        N, C, L = tokens.shape
        scores = predict(lambda p, b: encoder.forward(p, config, b["tokens"], b["tokens"] != 0), run.params,
                         {"tokens": tokens.reshape(N * C, L)}, batch_size * 4).reshape(N, C)
        return ranking_metrics(scores, eval_arrays["labels"]), run.params
    out = predict(lambda p, b: encoder.forward(p, config, b["tokens"], b["tokens"] != 0), run.params,
                  {"tokens": tokens}, batch_size * 4)
    metrics = (classification_metrics(out, eval_arrays["labels"]) if config.task == "classification"
               else regression_metrics(out, eval_arrays["labels"]))
    return metrics, run.params
