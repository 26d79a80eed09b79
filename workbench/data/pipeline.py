"""Pure-numpy training pipelines: packing, deterministic batching, PrefixLM split, T5/UL2 span corruption,
and task tokenisation into padded arrays (pad 0; seq2seq targets end with EOS; text-to-text prompts are cut in
their passage only, never in the instruction, question or options).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

PAD = 0


def pack_documents(
    token_lists: Iterable[Sequence[int]], seq_len: int, eos_id: int = 1, drop_remainder: bool = True
) -> np.ndarray:
    """Concatenate documents, each followed by EOS, and cut into rows of ``seq_len`` -> int32 [N, seq_len].

    The last partial row is dropped (``drop_remainder``) or right-padded with 0.
    """
    parts = [np.asarray(list(t) + [eos_id], dtype=np.int32) for t in token_lists]
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    n = len(flat) // seq_len
    if not drop_remainder and len(flat) % seq_len:
        flat = np.concatenate([flat, np.zeros(seq_len - len(flat) % seq_len, np.int32)])
        n += 1
    return flat[: n * seq_len].reshape(n, seq_len)


def batches(
    data: np.ndarray | dict[str, np.ndarray],
    batch_size: int,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = True,
    shuffle: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Dict-of-numpy batches in an order fixed by (seed, epoch). A bare array becomes ``{'tokens': x}``."""
    if isinstance(data, np.ndarray):
        data = {"tokens": data}
    n = len(next(iter(data.values())))
    if any(len(v) != n for v in data.values()):
        raise ValueError(f"batches: arrays differ in length: { {k: len(v) for k, v in data.items()} }")
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        yield {k: v[idx] for k, v in data.items()}


def prefix_lm_split(tokens: np.ndarray) -> dict[str, np.ndarray]:
    """PrefixLM: the first half of each row is the input (encoder), the second half the target."""
    tokens = np.asarray(tokens)
    half = tokens.shape[-1] // 2
    return {"inputs": tokens[..., :half], "targets": tokens[..., half:]}


def random_spans_noise_mask(
    length: int, noise_density: float, mean_span: float, rng: np.random.Generator
) -> np.ndarray:
    """T5's noise mask: ``round(length * density)`` noise tokens in ``round(noise / mean_span)`` spans,
    alternating non-noise / noise segments (starting with non-noise), segment lengths uniformly random."""
    num_noise = int(np.clip(round(length * noise_density), 1, length - 1))
    num_spans = max(1, int(round(num_noise / mean_span)))
    num_nonnoise = length - num_noise
    num_spans = min(num_spans, num_noise, num_nonnoise)

    def segment(n_items: int, n_segs: int) -> np.ndarray:
        # random composition of n_items into n_segs positive parts
        cuts = np.sort(rng.choice(np.arange(1, n_items), n_segs - 1, replace=False)) if n_segs > 1 else []
        return np.diff(np.concatenate([[0], cuts, [n_items]])).astype(int)

    noise_lens, keep_lens = segment(num_noise, num_spans), segment(num_nonnoise, num_spans)
    mask = np.zeros(length, bool)
    pos = 0
    for k, m in zip(keep_lens, noise_lens, strict=True):
        pos += k
        mask[pos : pos + m] = True
        pos += m
    return mask


def span_corrupt(
    tokens: Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    mean_span: float = 3.0,
    noise_density: float = 0.15,
    sentinel_ids: Sequence[int] = (),
    eos_id: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """T5 span corruption. inputs: kept tokens with each noise span replaced by one sentinel; targets:
    ``sentinel_i span_i`` for every span (then EOS if ``eos_id`` is given). Deterministic given ``rng``."""
    tokens = np.asarray(tokens, dtype=np.int32)
    if len(tokens) < 2:
        raise ValueError("span_corrupt needs at least 2 tokens")
    mask = random_spans_noise_mask(len(tokens), noise_density, mean_span, rng)
    starts = np.flatnonzero(mask & ~np.concatenate([[False], mask[:-1]]))
    if len(starts) > len(sentinel_ids):
        raise ValueError(f"{len(starts)} noise spans but only {len(sentinel_ids)} sentinel ids")
    inputs, targets = [], []
    span = -1
    for i, t in enumerate(tokens):
        if mask[i]:
            if i == 0 or not mask[i - 1]:
                span += 1
                inputs.append(sentinel_ids[span])
                targets.append(sentinel_ids[span])
            targets.append(t)
        else:
            inputs.append(t)
    if eos_id is not None:
        targets.append(eos_id)
    return np.asarray(inputs, np.int32), np.asarray(targets, np.int32)


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """One UL2 denoiser. ``prefix=True``: sequential (S) denoising — the last ``noise_density`` of the
    sequence is one target span, the rest is the input."""

    mean_span: float
    noise_density: float
    mode: str  # "[NLU]" (R), "[NLG]" (X), "[S2S]" (S)
    prefix: bool = False


# T5Gemma 2's UL2 mixture: weights 1:1:1:1:4.
UL2_MIXTURE: tuple[tuple[Denoiser, float], ...] = (
    (Denoiser(3, 0.15, "[NLU]"), 1.0),
    (Denoiser(12, 0.5, "[NLG]"), 1.0),
    (Denoiser(32, 0.15, "[NLG]"), 1.0),
    (Denoiser(32, 0.5, "[NLG]"), 1.0),
    (Denoiser(0, 0.75, "[S2S]", prefix=True), 4.0),
)


def sample_denoiser(rng: np.random.Generator, mixture=UL2_MIXTURE) -> Denoiser:
    w = np.asarray([m[1] for m in mixture], float)
    return mixture[int(rng.choice(len(mixture), p=w / w.sum()))][0]


def ul2_example(
    tokens: Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    denoiser: Denoiser,
    sentinel_ids: Sequence[int],
    mode_ids: dict[str, int],
    eos_id: int | None = None,
) -> dict[str, np.ndarray]:
    """UL2 inputs/targets: the mode token first in the inputs, then the denoiser's corruption."""
    tokens = np.asarray(tokens, np.int32)
    mode = np.asarray([mode_ids[denoiser.mode]], np.int32)
    if denoiser.prefix:
        cut = int(np.clip(round(len(tokens) * (1 - denoiser.noise_density)), 1, len(tokens) - 1))
        inputs, targets = tokens[:cut], tokens[cut:]
        if eos_id is not None:
            targets = np.concatenate([targets, [eos_id]]).astype(np.int32)
    else:
        inputs, targets = span_corrupt(tokens, rng, denoiser.mean_span, denoiser.noise_density, sentinel_ids, eos_id)
    return {"inputs": np.concatenate([mode, inputs]).astype(np.int32), "targets": targets}


def pad_to(seqs: Sequence[Sequence[int]], length: int, pad: int = PAD) -> np.ndarray:
    """Right-pad (and truncate) to int32 [N, length]."""
    out = np.full((len(seqs), length), pad, np.int32)
    for i, s in enumerate(seqs):
        s = list(s)[:length]
        out[i, : len(s)] = s
    return out


def _cut_eos(ids: list[int], max_len: int, eos_id: int) -> list[int]:
    return ids[: max_len - 1] + [eos_id]


class PromptTooLong(ValueError):
    """A prompt whose non-passage part (instruction, question, options) alone exceeds the token budget."""

    def __init__(self, task: str, fixed_tokens: int, budget: int):
        self.task, self.fixed_tokens, self.budget = task, fixed_tokens, budget
        super().__init__(f"task {task!r}: the prompt without its passage is {fixed_tokens} tokens, over the "
                         f"budget of {budget} (max_input_len - 1 for EOS)")


def _water_fill(lengths: Sequence[int], total: int) -> list[int]:
    """Split ``total`` tokens over passages of ``lengths``: equal shares, a short passage's leftover to the rest."""
    keep, left, open_ = [0] * len(lengths), max(0, total), sorted(range(len(lengths)), key=lambda i: lengths[i])
    while open_ and left > 0:
        share = left // len(open_)
        i = open_[0]
        if lengths[i] <= share:  # the shortest fits whole
            keep[i], left = lengths[i], left - lengths[i]
            open_.pop(0)
            continue
        for j in open_:
            keep[j] = share
        for j in open_[: left - share * len(open_)]:  # the remainder, one token each
            keep[j] += 1
        break
    return keep


def fit_prompt(text: str, task: str, tokenizer, budget: int, ids: list[int] | None = None) -> list[int]:
    """Token ids of a text-to-text prompt (:func:`workbench.data.tasks.format_text_to_text`) within ``budget``:
    only the passage (``tasks.PASSAGE_FIELDS``) is shortened, from its end, so the instruction, the question
    and any answer options survive whole. Several passages (WiC's two sentences) share the room equally.

    Raises :class:`PromptTooLong` when the prompt without its passage exceeds ``budget``, and ``ValueError`` when
    an over-long ``text`` matches none of the task's templates."""
    from workbench.data.tasks import PASSAGE_FIELDS, parse_prompt

    ids = tokenizer.encode(text) if ids is None else ids
    if len(ids) <= budget:
        return ids
    parsed = parse_prompt(text, task)
    if parsed is None:
        raise ValueError(f"task {task!r}: a {len(ids)}-token prompt over the budget of {budget} matches no "
                         f"template of the task, so its passage cannot be found: {text[:120]!r}")
    src, fields = parsed
    names = [f for f in PASSAGE_FIELDS.get(task, ()) if f in fields]
    fixed = len(tokenizer.encode(src.format(**{**fields, **dict.fromkeys(names, "")})))
    if fixed > budget:
        raise PromptTooLong(task, fixed, budget)
    passages = [tokenizer.encode(fields[f]) for f in names]
    room = budget - fixed
    while True:  # token counts do not add up exactly across the joins: shrink until it fits (room 0 always does)
        keep = _water_fill([len(p) for p in passages], room)
        cut = {f: tokenizer.decode(p[:k]) for f, p, k in zip(names, passages, keep, strict=True)}
        out = tokenizer.encode(src.format(**{**fields, **cut}))
        if len(out) <= budget or room <= 0:
            return out
        room = max(0, room - (len(out) - budget))


def tokenize_seq2seq(
    ds,
    tokenizer,
    max_input_len: int,
    max_target_len: int,
    input_field: str = "inputs",
    target_field: str = "targets",
    task_field: str | None = "task",
) -> dict[str, np.ndarray]:
    """Padded ``inputs`` [N, Li] and ``targets`` [N, Lt]; both end with EOS (kept under truncation).

    Rows whose ``task_field`` names a text-to-text task (the mixture's ``task`` column) are fitted with
    :func:`fit_prompt`: only the passage is cut, never the instruction, question or options; if some prompt's
    non-passage part alone is over ``max_input_len - 1`` tokens, a ``ValueError`` names the tasks and the
    ``max_input_len`` they need. Other inputs keep their first ``max_input_len - 1`` tokens."""
    texts, src, tasks = _prompts(ds, tokenizer, input_field, task_field)
    tgt = tokenizer.encode_batch(list(ds[target_field]))
    eos = tokenizer.eos_id
    rows, need = [], {}
    for text, ids, task in zip(texts, src, tasks, strict=True):
        if task is not None and len(ids) > max_input_len - 1:
            try:
                ids = fit_prompt(text, task, tokenizer, max_input_len - 1, ids)
            except PromptTooLong as e:
                n, most = need.get(task, (0, 0))
                need[task] = (n + 1, max(most, e.fixed_tokens + 1))
                continue
        rows.append(_cut_eos(ids, max_input_len, eos))
    if need:
        detail = ", ".join(f"{t}: {n} of {tasks.count(t)} rows, up to max_input_len {m} needed"
                           for t, (n, m) in sorted(need.items()))
        raise ValueError(f"tokenize_seq2seq: max_input_len={max_input_len} cannot hold the instruction, question "
                         f"and options of some prompts even with their passage removed ({detail}); raise "
                         f"max_input_len, or keep only the rows that fit (`prompt_rows_that_fit`)")
    return {
        "inputs": pad_to(rows, max_input_len),
        "targets": pad_to([_cut_eos(t, max_target_len, eos) for t in tgt], max_target_len),
    }


def _prompts(ds, tokenizer, input_field: str, task_field: str | None) -> tuple[list[str], list[list[int]], list]:
    """(texts, their token ids, each row's text-to-text task or None)."""
    from workbench.data.tasks import TEMPLATES

    texts = list(ds[input_field])
    columns = ds.column_names if hasattr(ds, "column_names") else list(ds)
    tasks = list(ds[task_field]) if task_field is not None and task_field in columns else [None] * len(texts)
    return texts, tokenizer.encode_batch(texts), [t if t in TEMPLATES else None for t in tasks]


def prompt_rows_that_fit(
    ds, tokenizer, max_input_len: int, input_field: str = "inputs", task_field: str | None = "task"
) -> list[int]:
    """Indices of the rows :func:`tokenize_seq2seq` can fit into ``max_input_len`` without cutting the
    instruction, question or options (``ds.select`` them first to drop the rest, e.g. retrieval items whose
    four definitions alone are too long). Rows that are not text-to-text prompts always fit."""
    texts, src, tasks = _prompts(ds, tokenizer, input_field, task_field)
    keep = []
    for i, (text, ids, task) in enumerate(zip(texts, src, tasks, strict=True)):
        if task is not None and len(ids) > max_input_len - 1:
            try:
                fit_prompt(text, task, tokenizer, max_input_len - 1, ids)
            except PromptTooLong:
                continue
        keep.append(i)
    return keep


def tokenize_classification(
    ds,
    tokenizer,
    max_len: int,
    text_fields: Sequence[str] | None = None,
    label_field: str = "label",
    add_bos: bool = False,
) -> dict[str, np.ndarray]:
    """``tokens`` [N, max_len] right-padded with 0: ``a EOS`` or ``a EOS b EOS`` (each part truncated to
    its share so the last EOS survives), and ``labels`` (int32, or float32 for regression)."""
    cols = ds.column_names
    fields = list(text_fields or (["text_a", "text_b"] if "text_a" in cols else ["text"]))
    enc = [tokenizer.encode_batch(list(ds[f])) for f in fields]
    eos, budget = tokenizer.eos_id, max_len - (1 if add_bos else 0)
    rows = []
    for parts in zip(*enc, strict=True):
        share = budget // len(parts)
        row = [tokenizer.bos_id] if add_bos else []
        for p in parts:
            row += p[: share - 1] + [eos]
        rows.append(row)
    labels = np.asarray(ds[label_field])
    labels = labels.astype(np.float32) if labels.dtype.kind == "f" else labels.astype(np.int32)
    return {"tokens": pad_to(rows, max_len), "labels": labels}


def tokenize_ranking(ds, tokenizer, max_len: int, add_bos: bool = False) -> dict[str, np.ndarray]:
    """``tokens`` [N, C, max_len] = ``[BOS] query EOS candidate EOS`` per candidate, ``labels`` [N] (positive)."""
    q = tokenizer.encode_batch(list(ds["query"]))
    cands = list(ds["candidates"])
    c = len(cands[0])
    flat = tokenizer.encode_batch([x for cs in cands for x in cs])
    eos, half = tokenizer.eos_id, max_len // 2
    bos = [tokenizer.bos_id] if add_bos else []
    rows = []
    for i, qi in enumerate(q):
        qpart = bos + qi[: half - 1 - len(bos)] + [eos]
        for j in range(c):
            rows.append(qpart + flat[i * c + j][: max_len - len(qpart) - 1] + [eos])
    return {
        "tokens": pad_to(rows, max_len).reshape(len(q), c, max_len),
        "labels": np.asarray(ds["label"], np.int32),
    }


def lm_arrays(texts: Iterable[str], tokenizer, seq_len: int) -> np.ndarray:
    """Tokenise and pack texts for (causal / prefix / UL2) pretraining."""
    return pack_documents(tokenizer.encode_batch(list(texts)), seq_len, tokenizer.eos_id)
