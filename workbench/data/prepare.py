"""``workbench data prepare``: fetch sources, build corpus, tokenizer and tasks (idempotent).

A full run (no ``sources``) fetches every source and rebuilds everything. With ``sources`` it fetches those and
rebuilds only what depends on them: the corpus is always built from *every* fetched corpus source (so
``--sources brown`` refreshes Brown without shrinking the corpus to Brown alone) unless ``restrict_corpus``
asks for a corpus of exactly those sources; the tasks of those sources and the mixture are rebuilt, the others
are left as they are. The tokenizer is retrained whenever the corpus it was trained on changed (its metadata
records the corpus file's sha256). ``prepare_summary.json`` keeps the statistics of the parts not rebuilt.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from workbench.data import sources as S
from workbench.data.corpus import CORPUS_SOURCES, build_corpus, corpus_dir, corpus_files
from workbench.data.files import DataError, atomic_path, resolve_cache, sha256_file
from workbench.data.tasks import TASK_SOURCES, build_all_tasks
from workbench.data.tokenizer import Tokenizer, tokenizer_path, train_tokenizer

SUMMARY = "prepare_summary.json"


def prepare(
    sources=None,
    cache=None,
    force: bool = False,
    vocab_size: int = 8192,
    model_type: str = "bpe",
    baselines: bool = False,
    log=print,
    restrict_corpus: bool = False,
) -> dict:
    """Fetch sources (a failing one is reported and skipped), then build corpus, tokenizer and tasks.

    Returns a summary dict (per-source status, corpus sizes and tokens, tokenizer, task sizes, timings), also
    written to ``<cache>/prepare_summary.json`` (merged into the previous one when only some sources are
    given). Raises ``DataError`` on an unknown source name, or on ``restrict_corpus`` without ``sources``.
    """
    warnings.filterwarnings("ignore", message="Unknown file type", module="rdata")
    cache = resolve_cache(cache)
    t0 = time.time()
    names = list(dict.fromkeys(sources)) if sources else list(S.SOURCES)
    if unknown := [n for n in names if n not in S.SOURCES]:
        raise DataError(f"unknown source(s) {', '.join(map(repr, unknown))}; known: {', '.join(S.SOURCES)}")
    if restrict_corpus and not sources:
        raise DataError("restrict_corpus (--restrict-corpus) needs the sources (--sources) to build the corpus from")
    partial = bool(sources)
    previous = _previous_summary(cache) if partial else {}
    had = {n for n in S.SOURCES if S.is_fetched(n, cache)}
    ok, failed = S.fetch_all(names, cache, force=force, log=log)
    new_raw = {n for n in ok if force or n not in had}
    summary: dict = {
        **previous,
        "cache": str(cache),
        "requested": names,
        "fetched": ok,
        "failed": failed,
        "available": [n for n in S.SOURCES if S.is_fetched(n, cache)],
        "timings": {"fetch_s": round(time.time() - t0, 1)},
    }
    corpus_sources = [s for s in CORPUS_SOURCES if S.is_fetched(s, cache) and (not restrict_corpus or s in names)]
    old_stats = _read_json(corpus_dir(cache) / "stats.json")
    rebuild_corpus = bool(corpus_sources) and (
        not partial or force or old_stats.get("sources") != corpus_sources or bool(new_raw & set(corpus_sources))
    )
    if rebuild_corpus:
        t = time.time()
        summary["corpus"] = build_corpus(cache, corpus_sources, log=log)
        summary["timings"]["corpus_s"] = round(time.time() - t, 1)
    elif not corpus_sources:
        log("[data] no corpus source available: corpus and tokenizer not built")
    if corpus_sources:
        retrained = _ensure_tokenizer(cache, force, vocab_size, model_type, log)
        summary["tokenizer"] = _tok_meta(cache)
        counted = all("tokens" in (summary.get("corpus") or {}).get(s, {}) for s in ("train", "validation"))
        if rebuild_corpus or retrained or not counted:
            if not rebuild_corpus:
                summary["corpus"] = {**old_stats, **(summary.get("corpus") or {})}
            _count_tokens(cache, summary)
        log(
            f"[data] corpus ({', '.join(summary['corpus']['sources'])}): train {summary['corpus']['train']['mb']} "
            f"MB / {summary['corpus']['train']['tokens']:,} tokens, validation "
            f"{summary['corpus']['validation']['tokens']:,} tokens"
            + ("" if rebuild_corpus else " (kept)")
        )
    t = time.time()
    if not partial:
        summary["tasks"] = build_all_tasks(cache, log=log)
    elif set(names) & set(TASK_SOURCES.values()):
        summary["tasks"] = {**(previous.get("tasks") or {}), **build_all_tasks(cache, log=log, sources=names)}
    summary["timings"]["tasks_s"] = round(time.time() - t, 1)
    if baselines:
        _baselines(cache, summary, log)
    summary["timings"]["total_s"] = round(time.time() - t0, 1)
    with atomic_path(cache / SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str))
    if failed:
        log(f"[data] {len(failed)} source(s) skipped: {', '.join(failed)} (see messages above)")
    return summary


def _ensure_tokenizer(cache: Path, force: bool, vocab_size: int, model_type: str, log) -> bool:
    """(Re)train the tokenizer unless it exists with this vocabulary size on this exact corpus; True if trained."""
    tok_path = tokenizer_path(cache)
    train_file = corpus_files(cache)["train"]
    digest = sha256_file(train_file)
    meta = _tok_meta(cache)
    if not (force or not tok_path.is_file() or meta.get("vocab_size") != vocab_size
            or meta.get("corpus_sha256", digest) != digest):
        if "corpus_sha256" not in meta:  # written before corpora were fingerprinted: adopt the current corpus
            _write_tok_meta(cache, {**meta, "corpus_sha256": digest})
        return False
    if meta and meta.get("corpus_sha256", digest) != digest:
        log("[data] the corpus changed since the tokenizer was trained: retraining it (models and token arrays "
            "made with the old tokenizer no longer match it)")
    info = train_tokenizer([train_file], tok_path, vocab_size=vocab_size, model_type=model_type)
    _write_tok_meta(cache, {**info, "corpus_sha256": digest})
    return True


def _count_tokens(cache: Path, summary: dict) -> None:
    tok = Tokenizer.load(tokenizer_path(cache))
    t = time.time()
    for split, path in corpus_files(cache).items():
        n = 0
        with open(path, encoding="utf-8") as f:
            batch = []
            for line in f:
                batch.append(json.loads(line)["text"])
                if len(batch) == 2000:
                    n += sum(len(x) + 1 for x in tok.encode_batch(batch))
                    batch = []
            n += sum(len(x) + 1 for x in tok.encode_batch(batch))
        summary["corpus"][split]["tokens"] = n
    summary["timings"]["count_tokens_s"] = round(time.time() - t, 1)


def _baselines(cache: Path, summary: dict, log) -> None:
    from workbench.data.baselines import tfidf_baseline
    from workbench.data.tasks import TASKS, tasks_dir

    summary["baselines"] = dict(summary.get("baselines") or {})
    for name in TASKS:
        if isinstance(summary.get("tasks", {}).get(name), dict):
            b = tfidf_baseline(name, cache)
            summary["baselines"][name] = b
            log(f"[data] baseline {name}: {b}")
            info = tasks_dir(cache) / name / "info.json"
            meta = json.loads(info.read_text())
            meta["baseline"] = {k: v for k, v in b.items() if k not in ("task", "seconds")}
            with atomic_path(info) as tmp:
                tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _previous_summary(cache: Path) -> dict:
    """The last summary without its per-run fields (what a partial run keeps of the parts it does not rebuild)."""
    old = _read_json(cache / SUMMARY)
    return {k: v for k, v in old.items() if k not in ("requested", "fetched", "failed", "available", "timings")}


def _tok_meta(cache) -> dict:
    return _read_json(tokenizer_path(cache).with_suffix(".json"))


def _write_tok_meta(cache, meta: dict) -> None:
    with atomic_path(tokenizer_path(cache).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
