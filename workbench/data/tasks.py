"""Finetuning / evaluation tasks built offline from VADER, WordNet and Brown.

Every task is a ``datasets.DatasetDict`` with ``train``/``validation``/``test``, stored as canonical JSONL
under ``<cache>/tasks/<name>/`` (same bytes every run) and split by a grouping key so nothing leaks:

==================== ============== ===================================================== ==============
task                 kind           columns                                               split by
==================== ============== ===================================================== ==============
sentiment_binary     classification ``text``, ``label`` (0 neg / 1 pos), ``domain``       source document
sentiment_regression regression     ``text``, ``label`` (float mean rating in [-4, 4])    source document
wic                  classification ``word``, ``text_a``, ``text_b``, ``start_a`` ...,    word (lemma)
                                    ``label`` (1 = same sense)
definition           seq2seq        ``inputs``, ``targets`` (gloss), ``word``, ``synset`` synset
retrieval            ranking        ``query``, ``candidates`` (list[str]), ``label``      synset of the
                                    (index of the positive), ``candidate_ids``,           positive
                                    ``positive_id``; full-ranking corpus via
                                    :func:`load_retrieval_corpus` (``doc_id``, ``text``)
genre                classification ``text`` (a few sentences), ``label`` (0..14),        document
                                    ``genre``, ``doc_id``                                 (per genre)
mixture              seq2seq        ``inputs``, ``targets``, ``task`` (natural-language   each part's
                                    prompts over the tasks above)                         own split
==================== ============== ===================================================== ==============

Common schemas: classification ``text`` (or ``text_a``, ``text_b``) + int ``label``; regression float
``label``; seq2seq ``inputs`` + ``targets``; ranking ``query`` + ``candidates`` + ``label``.
"""

from __future__ import annotations

import functools
import json
import random
import re
import string
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from workbench.data import wordnet as W
from workbench.data.files import (
    Counts,
    DataError,
    atomic_path,
    read_lines,
    resolve_cache,
    split_of,
    stable_hash,
    write_jsonl,
)

SPLITS = ("train", "validation", "test")
BROWN_GENRES = (
    "adventure",
    "belles_lettres",
    "editorial",
    "fiction",
    "government",
    "hobbies",
    "humor",
    "learned",
    "lore",
    "mystery",
    "news",
    "religion",
    "reviews",
    "romance",
    "science_fiction",
)

TASKS: dict[str, dict] = {
    "sentiment_binary": {
        "kind": "classification",
        "num_labels": 2,
        "metrics": ["accuracy", "f1"],
        "label_names": ["negative", "positive"],
        "text_fields": ["text"],
    },
    "sentiment_regression": {
        "kind": "regression",
        "num_labels": 1,
        "metrics": ["pearson", "spearman", "mse"],
        "text_fields": ["text"],
    },
    "wic": {
        "kind": "classification",
        "num_labels": 2,
        "metrics": ["accuracy"],
        "label_names": ["different", "same"],
        "text_fields": ["text_a", "text_b"],
    },
    "definition": {"kind": "seq2seq", "num_labels": 0, "metrics": ["rougeL", "token_f1", "exact_match"]},
    "retrieval": {"kind": "ranking", "num_labels": 0, "metrics": ["mrr@10", "recall@1"]},
    "genre": {
        "kind": "classification",
        "num_labels": 15,
        "metrics": ["accuracy", "macro_f1"],
        "label_names": list(BROWN_GENRES),
        "text_fields": ["text"],
    },
    "mixture": {"kind": "seq2seq", "num_labels": 0, "metrics": ["exact_match", "rougeL"]},
}

CARDS_DIR = Path(__file__).parent / "cards"


def tasks_dir(cache=None) -> Path:
    return resolve_cache(cache) / "tasks"


# ---------------------------------------------------------------------------------------------------------
# Sentiment (VADER, Hutto & Gilbert 2014)

VADER_FILES = {
    "tweets": "tweets_GroundTruth.txt",
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
}


def read_vader(root: str | Path, counts: Counts | None = None) -> list[dict]:
    """Sentences with mean ratings; ``group`` = source document (``amazon/12`` for id ``12_3``)."""
    counts = counts if counts is not None else Counts()
    out = []
    for domain, fname in VADER_FILES.items():
        path = Path(root) / fname
        if not path.is_file():
            counts[f"missing:{fname}"] += 1
            continue
        for lineno, line in read_lines(path, counts):
            parts = line.split("\t")
            if len(parts) < 3:
                raise DataError(f"{path}:{lineno}: expected 'id<TAB>rating<TAB>text'")
            sid, rating, text = parts[0].strip(), parts[1], "\t".join(parts[2:]).strip()
            try:
                r = float(rating)
            except ValueError:
                raise DataError(f"{path}:{lineno}: rating {rating!r} is not a number") from None
            if not text:
                counts["empty_sentences"] += 1
                continue
            out.append(
                {
                    "id": f"{domain}/{sid}",
                    "group": f"{domain}/{sid.split('_')[0]}",
                    "domain": domain,
                    "text": text.replace("''", '"'),
                    "rating": r,
                }
            )
    return out


def build_sentiment(rows: list[dict], neutral: float = 0.5) -> tuple[dict, dict]:
    """(binary, regression) splits; binary drops |rating| < ``neutral`` like SST-2 drops neutral phrases."""
    binary: dict[str, list] = {s: [] for s in SPLITS}
    regression: dict[str, list] = {s: [] for s in SPLITS}
    seen = set()
    for r in rows:
        key = " ".join(r["text"].lower().split())
        if key in seen:  # duplicated sentence: keep the first
            continue
        seen.add(key)
        split = split_of(r["group"], "vader")
        regression[split].append(
            {"id": r["id"], "text": r["text"], "label": round(r["rating"], 4), "domain": r["domain"]}
        )
        if abs(r["rating"]) >= neutral:
            binary[split].append(
                {"id": r["id"], "text": r["text"], "label": int(r["rating"] > 0), "domain": r["domain"]}
            )
    return binary, regression


# ---------------------------------------------------------------------------------------------------------
# WordNet tasks


def build_wic(synsets: dict[str, W.Synset], insts: list[dict], max_pairs_per_word: int = 3) -> dict:
    """Word-in-context pairs built like WiC (Pilehvar & Camacho-Collados 2019).

    For each (lemma, pos): positive pairs = two example sentences of the same synset; negative pairs = two
    sentences of different synsets that are not directly related (no pointer between them, not sisters).
    Positives and negatives are balanced per word (``k = min(#pos, #neg, max_pairs_per_word)`` each). Split
    by lemma, so a word is in exactly one split.
    """
    by_word: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for it in insts:
        by_word[(it["lemma"], it["pos"])][it["synset"]].append(it)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for (lemma, pos), senses in sorted(by_word.items()):
        if len(senses) < 2:
            continue
        pos_pairs = [(a, b) for s in sorted(senses) for i, a in enumerate(senses[s]) for b in senses[s][i + 1 :]]
        ids = sorted(senses)
        neg_pairs = [
            (a, b)
            for i, s in enumerate(ids)
            for t in ids[i + 1 :]
            if not W.related(synsets[s], synsets[t])
            for a in senses[s]
            for b in senses[t]
        ]
        k = min(len(pos_pairs), len(neg_pairs), max_pairs_per_word)
        if k == 0:
            continue
        rng = random.Random(stable_hash("wic", lemma, pos))
        chosen = [(p, 1) for p in rng.sample(pos_pairs, k)] + [(p, 0) for p in rng.sample(neg_pairs, k)]
        split = split_of(lemma, "wic")
        for (a, b), label in chosen:
            if rng.random() < 0.5:
                a, b = b, a
            out[split].append(
                {
                    "word": lemma.replace("_", " "),
                    "pos": pos,
                    "text_a": a["sentence"],
                    "text_b": b["sentence"],
                    "start_a": a["start"],
                    "end_a": a["end"],
                    "start_b": b["start"],
                    "end_b": b["end"],
                    "label": label,
                    "synset_a": a["synset"],
                    "synset_b": b["synset"],
                }
            )
    return out


def synset_split(synset_id: str) -> str:
    """Split of a synset, shared by ``definition`` and ``retrieval``."""
    return split_of(synset_id, "wordnet-synset")


def build_definition(synsets: dict[str, W.Synset], insts: list[dict]) -> dict:
    out: dict[str, list] = {s: [] for s in SPLITS}
    for it in insts:
        s = synsets[it["synset"]]
        word = it["lemma"].replace("_", " ")
        out[synset_split(s.id)].append(
            {
                "inputs": f"word: {word} context: {it['sentence']}",
                "targets": s.definition,
                "word": word,
                "pos": s.pos,
                "sentence": it["sentence"],
                "synset": s.id,
            }
        )
    return out


def build_retrieval(
    synsets: dict[str, W.Synset], insts: list[dict], n_candidates: int = 10, max_queries_per_synset: int = 2
) -> tuple[dict, list[dict]]:
    """MS MARCO-style retrieval: query = a word in context, documents = WordNet definitions.

    Candidates = the positive, then hard negatives: the word's other senses (any POS), then sister senses
    (same hypernym), then random definitions to fill ``n_candidates``; shuffled deterministically.
    Returns (splits, corpus) where corpus = every synset's definition (``doc_id`` = synset id).
    """
    lemmas = W.lemma_index(synsets)
    by_lemma: dict[str, list[str]] = defaultdict(list)
    for (lem, _), ids in lemmas.items():
        by_lemma[lem].extend(ids)
    hypo: dict[str, list[str]] = defaultdict(list)
    for s in synsets.values():
        for h in W.hypernyms(s):
            hypo[h].append(s.id)
    all_ids = list(synsets)
    out: dict[str, list] = {s: [] for s in SPLITS}
    per_synset: dict[str, int] = defaultdict(int)
    for it in insts:
        sid = it["synset"]
        if per_synset[sid] >= max_queries_per_synset:
            continue
        per_synset[sid] += 1
        rng = random.Random(stable_hash("retrieval", sid, it["sentence"]))
        defn = synsets[sid].definition
        cands, seen_text = [sid], {defn}

        def add(ids, limit, cands=cands, seen_text=seen_text):
            for c in ids:
                if len(cands) >= limit:
                    return
                t = synsets[c].definition
                if c not in cands and t not in seen_text:
                    cands.append(c)
                    seen_text.add(t)

        add(by_lemma[it["lemma"]], n_candidates)
        sisters = sorted({x for h in W.hypernyms(synsets[sid]) for x in hypo[h]})
        rng.shuffle(sisters)
        add(sisters, n_candidates)
        while len(cands) < n_candidates:
            add([rng.choice(all_ids)], n_candidates)
        order = list(range(len(cands)))
        rng.shuffle(order)
        cands = [cands[i] for i in order]
        word = it["lemma"].replace("_", " ")
        out[synset_split(sid)].append(
            {
                "query": f"{word}: {it['sentence']}",
                "word": word,
                "sentence": it["sentence"],
                "candidates": [synsets[c].definition for c in cands],
                "candidate_ids": cands,
                "label": cands.index(sid),
                "positive_id": sid,
            }
        )
    corpus = [{"doc_id": s.id, "text": s.definition} for s in synsets.values()]
    return out, corpus


# ---------------------------------------------------------------------------------------------------------
# Genre (Brown)


def build_genre(brown_docs: Iterable[dict], doc_split: dict[str, str], sentences_per_example: int = 5) -> dict:
    """Chunks of ``sentences_per_example`` consecutive sentences, labelled with the document's genre."""
    out: dict[str, list] = {s: [] for s in SPLITS}
    for d in brown_docs:
        sents = d["sentences"]
        for i in range(0, len(sents) - sentences_per_example // 2, sentences_per_example):
            text = " ".join(sents[i : i + sentences_per_example])
            out[doc_split[d["doc_id"]]].append(
                {
                    "text": text,
                    "label": BROWN_GENRES.index(d["genre"]),
                    "genre": d["genre"],
                    "doc_id": d["doc_id"],
                }
            )
    return out


# ---------------------------------------------------------------------------------------------------------
# Text-to-text formatting and the instruction mixture

TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "sentiment_binary": [
        ("Is the sentiment of this sentence positive or negative?\n{text}", "{label_name}"),
        ("Review: {text}\nDid the writer feel positive or negative?", "{label_name}"),
    ],
    "sentiment_regression": [
        (
            "Rate the sentiment of this sentence from -4 (very negative) to 4 (very positive).\n{text}",
            "{rating}",
        ),
        ("How positive is this, on a scale from -4 to 4?\n{text}", "{rating}"),
    ],
    "wic": [
        (
            'Does the word "{word}" mean the same thing in these two sentences?\n1: {text_a}\n2: {text_b}',
            "{yes_no}",
        ),
        (
            'Sentence A: {text_a}\nSentence B: {text_b}\nIs "{word}" used in the same sense in A and B?',
            "{yes_no}",
        ),
    ],
    "definition": [
        ('What does "{word}" mean in this sentence?\n{sentence}', "{targets}"),
        ('Define the word "{word}" as it is used here: {sentence}', "{targets}"),
    ],
    "retrieval": [('Which definition fits "{word}" in: {sentence}\n{options}\nAnswer with the letter.', "{letter}")],
    "genre": [
        ("Which genre is this passage from? Options: {genres}.\n{text}", "{label_name}"),
        ("Passage: {text}\nWhat kind of text is this ({genres})?", "{label_name}"),
    ],
}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def format_text_to_text(example: dict, task_name: str, template: int | None = None) -> dict:
    """Natural-language ``inputs``/``targets`` for one task example (template chosen by a stable hash)."""
    if task_name not in TEMPLATES:
        raise KeyError(f"no text-to-text template for task {task_name!r}; known: {', '.join(TEMPLATES)}")
    temps = TEMPLATES[task_name]
    key = json.dumps(example, sort_keys=True, ensure_ascii=False)
    i = template if template is not None else stable_hash("tmpl", key) % len(temps)
    src, tgt = temps[i % len(temps)]
    f = dict(example)
    meta = TASKS.get(task_name, {})
    if "label_names" in meta and isinstance(example.get("label"), int):
        f["label_name"] = meta["label_names"][example["label"]].replace("_", " ")
    if task_name == "sentiment_regression":
        f["rating"] = f"{example['label']:.1f}"
    if task_name == "wic":
        f["yes_no"] = "yes" if example["label"] == 1 else "no"
    if task_name == "genre":
        f["genres"] = ", ".join(g.replace("_", " ") for g in BROWN_GENRES)
    if task_name == "retrieval":
        options, slot = retrieval_options(example)
        f["options"] = "\n".join(f"{LETTERS[j]}) {c}" for j, c in enumerate(options))
        f["letter"] = LETTERS[slot]
    return {"inputs": src.format(**f), "targets": tgt.format(**f)}


def retrieval_options(example: dict, n_options: int = 4) -> tuple[list[str], int]:
    """Multiple-choice options of a retrieval example: the positive plus the first ``n_options - 1`` other
    candidates, the positive at a slot drawn uniformly (seeded by a stable hash of the example) -> (options, slot).
    """
    cands, label = list(example["candidates"]), int(example["label"])
    k = min(n_options, len(cands))
    negatives = [c for j, c in enumerate(cands) if j != label][: k - 1]
    key = json.dumps(example, sort_keys=True, ensure_ascii=False)
    slot = stable_hash("retrieval-slot", key) % k
    return negatives[:slot] + [cands[label]] + negatives[slot:], slot


# The passage fields of each template: the only part of a prompt that may be cut to fit a length budget.
PASSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "sentiment_binary": ("text",),
    "sentiment_regression": ("text",),
    "wic": ("text_a", "text_b"),
    "definition": ("sentence",),
    "retrieval": ("sentence",),
    "genre": ("text",),
}


@functools.lru_cache(maxsize=64)
def _template_regex(src: str) -> re.Pattern:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(src):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P<{field}>.*?)")
    return re.compile("".join(parts), re.DOTALL)


def parse_prompt(inputs: str, task_name: str) -> tuple[str, dict[str, str]] | None:
    """Recover (template source, field values) of a prompt made by :func:`format_text_to_text`, such that
    ``source.format(**fields) == inputs``; None when no template of the task matches."""
    for src, _ in TEMPLATES.get(task_name, []):
        m = _template_regex(src).fullmatch(inputs)
        if m is not None:
            return src, m.groupdict()
    return None


def build_mixture(parts: dict[str, dict], caps: dict[str, int] | None = None) -> dict:
    """Examples-proportional mixture with a per-task cap (T5 style); each part keeps its own split."""
    caps = caps or {"train": 3000, "validation": 300, "test": 300}
    out: dict[str, list] = {s: [] for s in SPLITS}
    for name in sorted(parts):
        if name not in TEMPLATES:
            continue
        for split in SPLITS:
            rows = list(parts[name].get(split, []))
            rng = random.Random(stable_hash("mixture", name, split))
            if len(rows) > caps[split]:
                rows = rng.sample(rows, caps[split])
            out[split].extend({**format_text_to_text(r, name), "task": name} for r in rows)
    for split in SPLITS:
        random.Random(stable_hash("mixture-order", split)).shuffle(out[split])
    return out


# ---------------------------------------------------------------------------------------------------------
# Storage, cards, loading


def write_task(name: str, splits: dict[str, list], cache=None, extra: dict | None = None) -> dict:
    d = tasks_dir(cache) / name
    sizes = {s: write_jsonl(d / f"{s}.jsonl", splits.get(s, [])) for s in SPLITS}
    info = {"name": name, **TASKS.get(name, {}), "sizes": sizes, **(extra or {})}
    with atomic_path(d / "info.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    return sizes


def task_files(name: str, cache=None) -> dict[str, str]:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    d = tasks_dir(cache) / name
    files = {s: str(d / f"{s}.jsonl") for s in SPLITS}
    if not all(Path(f).is_file() for f in files.values()):
        raise FileNotFoundError(f"task {name!r} not prepared under {d}: run `workbench data prepare`")
    return files


def load_task(name: str, cache=None):
    """A prepared task as a ``datasets.DatasetDict`` (train/validation/test); a damaged file raises ``DataError``."""
    from workbench.data.loaders import check_labels, load_local_files

    files = task_files(name, cache)
    empty = [s for s, f in files.items() if Path(f).stat().st_size == 0]
    if empty:
        raise DataError(f"task {name!r}: split(s) {empty} are empty in {Path(files['train']).parent}")
    try:
        return check_labels(load_local_files("json", files, str(resolve_cache(cache) / "hf_datasets")), files)
    except DataError as e:
        source = TASK_SOURCES.get(name)
        redo = f"workbench data prepare --sources {source}" if source else "workbench data prepare"
        raise DataError(f"prepared task {name!r} is damaged: {e}; rebuild it with `{redo}`") from e


def load_retrieval_corpus(cache=None):
    """All WordNet definitions (``doc_id``, ``text``) for full-ranking retrieval."""
    import datasets

    p = tasks_dir(cache) / "retrieval" / "corpus.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"{p} missing: run `workbench data prepare`")
    return datasets.load_dataset(
        "json", data_files={"corpus": str(p)}, cache_dir=str(resolve_cache(cache) / "hf_datasets")
    )["corpus"]


def task_card(name: str, cache=None) -> str:
    """The task's data card (markdown), with measured sizes appended when the task is prepared."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    card = (CARDS_DIR / f"{name}.md").read_text()
    info = tasks_dir(cache) / name / "info.json"
    if info.is_file():
        meta = json.loads(info.read_text())
        rows = "\n".join(f"| {s} | {n} |" for s, n in meta["sizes"].items())
        card += f"\n## Prepared sizes (this cache)\n\n| split | examples |\n|---|---|\n{rows}\n"
        if "baseline" in meta:
            card += f"\nTF-IDF baseline (test): `{json.dumps(meta['baseline'])}`\n"
    return card


# The source each task is built from; the mixture is built from all of them.
TASK_SOURCES: dict[str, str] = {
    "sentiment_binary": "vader",
    "sentiment_regression": "vader",
    "wic": "wordnet",
    "definition": "wordnet",
    "retrieval": "wordnet",
    "genre": "brown",
}


def build_all_tasks(cache=None, log=print, sources: Iterable[str] | None = None) -> dict:
    """Build every task whose sources are fetched; returns {task: sizes or error}.

    With ``sources``, only the tasks of those sources (and the mixture) are rebuilt; the mixture then reads the
    other parts from their prepared files (the same rows it was built from), so they are not rewritten.
    """
    from workbench.data import sources as S
    from workbench.data.corpus import brown_doc_split
    from workbench.data.files import read_jsonl

    wanted = set(TASK_SOURCES.values()) if sources is None else set(sources) & set(TASK_SOURCES.values())
    summary: dict = {}
    built: dict[str, dict] = {}
    t0 = time.time()
    if "vader" in wanted and S.is_fetched("vader", cache):
        rows = read_vader(S.vader_dir(cache))
        binary, regression = build_sentiment(rows)
        built["sentiment_binary"], built["sentiment_regression"] = binary, regression
    elif "vader" in wanted:
        summary["sentiment_binary"] = summary["sentiment_regression"] = "skipped: source vader not fetched"
    if "wordnet" in wanted and S.is_fetched("wordnet", cache):
        root = S.wordnet_dir(cache)
        synsets = W.load_wordnet(root)
        insts = list(W.instances(synsets, W.load_exceptions(root)))
        built["wic"] = build_wic(synsets, insts)
        built["definition"] = build_definition(synsets, insts)
        built["retrieval"], corpus = build_retrieval(synsets, insts)
        write_jsonl(tasks_dir(cache) / "retrieval" / "corpus.jsonl", corpus)
    elif "wordnet" in wanted:
        summary["wic"] = summary["definition"] = summary["retrieval"] = "skipped: source wordnet not fetched"
    if "brown" in wanted and S.is_fetched("brown", cache):
        docs = list(S.read_source("brown", cache))
        built["genre"] = build_genre(docs, brown_doc_split(docs))
    elif "brown" in wanted:
        summary["genre"] = "skipped: source brown not fetched"
    if built:
        parts = dict(built)
        for name, source in TASK_SOURCES.items():
            d = tasks_dir(cache) / name
            if name not in parts and source not in wanted and all((d / f"{s}.jsonl").is_file() for s in SPLITS):
                parts[name] = {s: list(read_jsonl(d / f"{s}.jsonl")) for s in SPLITS}
        built["mixture"] = build_mixture(parts)
    for name, splits in built.items():
        summary[name] = write_task(name, splits, cache)
        log(f"[data] task {name}: {summary[name]}")
    summary["seconds"] = round(time.time() - t0, 1)
    return summary
