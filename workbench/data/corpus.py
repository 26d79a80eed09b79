"""Pretraining corpus: cleaned, deduplicated English text from the offline sources.

Stored as ``<cache>/corpus/{train,validation}.jsonl`` with fields ``doc_id``, ``source``, ``text``. The
validation split holds ~3% of the documents of every source (by a stable hash of the document id, so the
split is deterministic and by document). Brown documents of the genre task's validation/test splits and all
task sources (VADER sentences, WordNet glosses) are kept out of the corpus, so pretraining never sees task
evaluation text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from workbench.data import sources as S
from workbench.data.clean import clean_email, clean_text, dedup_documents, looks_like_markup, split_long
from workbench.data.files import Counts, atomic_path, resolve_cache, stratified_split, write_jsonl

CORPUS_SOURCES = ("sotu", "brown", "moby_dick", "spam", "shakespeare", "fortunes", "janeausten")
SPLITS = ("train", "validation")


def corpus_dir(cache=None) -> Path:
    return resolve_cache(cache) / "corpus"


def brown_doc_split(docs: Iterable[dict]) -> dict[str, str]:
    """Brown document -> split, stratified by genre (shared by the corpus and the genre task)."""
    groups: dict[str, list[str]] = {}
    for d in docs:
        groups.setdefault(d["genre"], []).append(d["doc_id"])
    return stratified_split(groups, salt="brown-genre", val=0.1, test=0.1)


def prepare_docs(raw_docs: Iterable[dict], counts: Counts, max_doc_chars: int = 100_000) -> list[dict]:
    """Clean, filter, dedup and split over-long documents; returns records in input order."""

    def cleaned():
        for d in raw_docs:
            text = d["text"] or ""
            if d["source"] == "spam":
                if not d.get("group", "").startswith(("easy-ham", "hard-ham")):
                    continue  # spam messages are not pretraining prose
                text = clean_email(text)
                if looks_like_markup(text):
                    counts["markup_docs_dropped"] += 1
                    continue
            text = clean_text(text, counts)
            if not text:
                counts["empty_docs"] += 1
                continue
            yield {"doc_id": d["doc_id"], "source": d["source"], "text": text}

    out = []
    for d in dedup_documents(cleaned(), counts):
        parts = split_long(d["text"], max_doc_chars)
        if len(parts) > 1:
            counts["long_docs_split"] += 1
        for i, part in enumerate(parts):
            doc_id = d["doc_id"] if len(parts) == 1 else f"{d['doc_id']}#{i}"
            out.append({"doc_id": doc_id, "source": d["source"], "text": part, "_parent": d["doc_id"]})
    return out


def build_corpus(
    cache=None,
    sources: Iterable[str] | None = None,
    val_fraction: float = 0.03,
    max_doc_chars: int = 100_000,
    log=print,
) -> dict:
    """Build the corpus JSONL files from fetched sources; returns statistics."""
    t0 = time.time()
    counts = Counts()
    names = [s for s in (sources or CORPUS_SOURCES) if s in CORPUS_SOURCES and S.is_fetched(s, cache)]
    skipped = [s for s in (sources or CORPUS_SOURCES) if s in CORPUS_SOURCES and s not in names]
    raw: list[dict] = []
    heldout_brown: set[str] = set()
    for name in names:
        docs = list(S.read_source(name, cache, counts))
        if not docs:
            counts[f"empty_source:{name}"] += 1
            log(f"[data] warning: source {name} produced no documents")
        if name == "brown":
            split = brown_doc_split(docs)
            heldout_brown = {k for k, v in split.items() if v != "train"}
            docs = [d for d in docs if d["doc_id"] not in heldout_brown]
        raw.extend(docs)
    docs = prepare_docs(raw, counts, max_doc_chars)
    by_source: dict[str, list[str]] = {}
    for d in docs:
        by_source.setdefault(d["source"], []).append(d["_parent"])
    parent_split = stratified_split(
        {k: sorted(set(v)) for k, v in by_source.items()}, "corpus", val=val_fraction, test=0.0
    )
    out = corpus_dir(cache)
    stats: dict = {"sources": names, "skipped_sources": skipped, "brown_heldout_docs": len(heldout_brown)}
    for split in SPLITS:
        recs = [{k: d[k] for k in ("doc_id", "source", "text")} for d in docs if parent_split[d["_parent"]] == split]
        write_jsonl(out / f"{split}.jsonl", recs)
        chars = sum(len(r["text"]) for r in recs)
        stats[split] = {
            "docs": len(recs),
            "chars": chars,
            "mb": round((out / f"{split}.jsonl").stat().st_size / 1e6, 2),
            "by_source": {s: sum(1 for r in recs if r["source"] == s) for s in names},
        }
    stats["counts"] = dict(sorted(counts.items()))
    stats["seconds"] = round(time.time() - t0, 1)
    with atomic_path(out / "stats.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=1))
    return stats


def corpus_files(cache=None) -> dict[str, str]:
    d = corpus_dir(cache)
    files = {s: str(d / f"{s}.jsonl") for s in SPLITS}
    missing = [f for f in files.values() if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"corpus not prepared ({missing[0]} missing): run `workbench data prepare`")
    return files


def load_corpus(cache=None):
    """The corpus as a ``datasets.DatasetDict`` with ``train``/``validation`` (text, source, doc_id)."""
    import datasets

    return datasets.load_dataset(
        "json", data_files=corpus_files(cache), cache_dir=str(resolve_cache(cache) / "hf_datasets")
    )


def iter_corpus_text(cache=None, split: str = "train") -> Iterable[str]:
    with open(corpus_files(cache)[split], encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
