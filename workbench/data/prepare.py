"""``workbench data prepare``: fetch sources, build corpus, tokenizer and tasks (idempotent)."""

from __future__ import annotations

import json
import time
import warnings

from workbench.data import sources as S
from workbench.data.corpus import CORPUS_SOURCES, build_corpus, corpus_files
from workbench.data.files import atomic_path, resolve_cache
from workbench.data.tasks import build_all_tasks
from workbench.data.tokenizer import Tokenizer, tokenizer_path, train_tokenizer


def prepare(
    sources=None,
    cache=None,
    force: bool = False,
    vocab_size: int = 8192,
    model_type: str = "bpe",
    baselines: bool = False,
    log=print,
) -> dict:
    """Fetch every source (a failing one is reported and skipped), then build corpus, tokenizer and tasks.

    Returns a summary dict (per-source status, corpus sizes and tokens, tokenizer time, task sizes, timings),
    also written to ``<cache>/prepare_summary.json``.
    """
    warnings.filterwarnings("ignore", message="Unknown file type", module="rdata")
    cache = resolve_cache(cache)
    t0 = time.time()
    names = list(sources) if sources else list(S.SOURCES)
    ok, failed = S.fetch_all(names, cache, force=force, log=log)
    summary: dict = {
        "cache": str(cache),
        "fetched": ok,
        "failed": failed,
        "timings": {"fetch_s": round(time.time() - t0, 1)},
    }
    corpus_sources = [s for s in CORPUS_SOURCES if S.is_fetched(s, cache) and (not sources or s in names)]
    if corpus_sources:
        t = time.time()
        summary["corpus"] = build_corpus(cache, corpus_sources, log=log)
        summary["timings"]["corpus_s"] = round(time.time() - t, 1)
        tok_path = tokenizer_path(cache)
        if force or not tok_path.is_file() or _tok_meta(cache).get("vocab_size") != vocab_size:
            info = train_tokenizer(
                [corpus_files(cache)["train"]], tok_path, vocab_size=vocab_size, model_type=model_type
            )
            with atomic_path(tok_path.with_suffix(".json")) as tmp:
                tmp.write_text(json.dumps(info, indent=1))
        summary["tokenizer"] = _tok_meta(cache)
        tok = Tokenizer.load(tok_path)
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
        log(
            f"[data] corpus: train {summary['corpus']['train']['mb']} MB / "
            f"{summary['corpus']['train']['tokens']:,}"
            f" tokens, validation {summary['corpus']['validation']['tokens']:,} tokens"
        )
    else:
        log("[data] no corpus source available: corpus and tokenizer not built")
    t = time.time()
    summary["tasks"] = build_all_tasks(cache, log=log)
    summary["timings"]["tasks_s"] = round(time.time() - t, 1)
    if baselines:
        from workbench.data.baselines import tfidf_baseline
        from workbench.data.tasks import TASKS, tasks_dir

        summary["baselines"] = {}
        for name in TASKS:
            if isinstance(summary["tasks"].get(name), dict):
                b = tfidf_baseline(name, cache)
                summary["baselines"][name] = b
                log(f"[data] baseline {name}: {b}")
                info = tasks_dir(cache) / name / "info.json"
                meta = json.loads(info.read_text())
                meta["baseline"] = {k: v for k, v in b.items() if k not in ("task", "seconds")}
                with atomic_path(info) as tmp:
                    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    summary["timings"]["total_s"] = round(time.time() - t0, 1)
    with atomic_path(cache / "prepare_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str))
    if failed:
        log(f"[data] {len(failed)} source(s) skipped: {', '.join(failed)} (see messages above)")
    return summary


def _tok_meta(cache) -> dict:
    p = tokenizer_path(cache).with_suffix(".json")
    return json.loads(p.read_text()) if p.is_file() else {}
