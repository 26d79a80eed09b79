"""Minimal WordNet 3.0 reader (``data.{noun,verb,adj,adv}`` and ``*.exc``) and target-word matching.

A synset id is ``<pos><offset>`` with pos in n/v/a/r (adjective satellites live in ``a``). Each synset
carries its lemmas (in order), the definition, the quoted example sentences of its gloss and its pointers.
``instances`` finds, for every example sentence, which of the synset's lemmas occurs in it (inflected forms
and the irregular forms of ``*.exc`` included) and where (character span), as WiC does.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from pathlib import Path

from workbench.data.files import Counts, DataError, read_lines

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_QUOTED = re.compile(r'"([^"]+)"')


@dataclasses.dataclass
class Synset:
    id: str
    pos: str
    lemmas: list[str]
    definition: str
    examples: list[str]
    pointers: list[tuple[str, str]]  # (symbol, target synset id)
    lexname: int = 0


def _sid(pos: str, offset: str) -> str:
    return ("a" if pos == "s" else pos) + offset


def parse_data_line(line: str, path: str = "?", lineno: int = 0) -> Synset:
    try:
        head, _, gloss = line.partition(" | ")
        f = head.split()
        offset, lexname, ss_type = f[0], int(f[1]), f[2]
        w_cnt = int(f[3], 16)
        words = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).lower() for i in range(w_cnt)]
        k = 4 + 2 * w_cnt
        p_cnt = int(f[k])
        ptrs = [(f[k + 1 + 4 * i], _sid(f[k + 3 + 4 * i], f[k + 2 + 4 * i])) for i in range(p_cnt)]
    except (IndexError, ValueError) as e:
        raise DataError(f"{path}:{lineno}: malformed WordNet data line ({e})") from None
    gloss = gloss.strip()
    examples = [e.strip() for e in _QUOTED.findall(gloss) if len(e.split()) >= 2]
    q = gloss.find('"')
    definition = (gloss[:q] if q >= 0 else gloss).strip().rstrip(";").strip()
    return Synset(_sid(ss_type, offset), "a" if ss_type == "s" else ss_type, words, definition, examples, ptrs, lexname)


def load_wordnet(root: str | Path, counts: Counts | None = None) -> dict[str, Synset]:
    """All synsets, keyed by id, in file order (deterministic)."""
    root = Path(root)
    counts = counts if counts is not None else Counts()
    out: dict[str, Synset] = {}
    for name in POS_FILES.values():
        path = root / f"data.{name}"
        if not path.is_file():
            counts[f"missing:data.{name}"] += 1
            continue
        for lineno, line in read_lines(path, counts):
            if line.startswith("  "):  # licence header
                continue
            s = parse_data_line(line, str(path), lineno)
            out[s.id] = s
    if not out:
        raise DataError(f"{root}: no WordNet data.* files found")
    return out


def load_exceptions(root: str | Path) -> dict[str, set[str]]:
    """lemma -> irregular inflected forms (from ``*.exc``)."""
    forms: dict[str, set[str]] = {}
    for name in POS_FILES.values():
        p = Path(root) / f"{name}.exc"
        if p.is_file():
            for _, line in read_lines(p):
                infl, *bases = line.split()
                for b in bases:
                    forms.setdefault(b, set()).add(infl)
    return forms


def inflections(lemma: str, irregular: dict[str, set[str]] | None = None) -> set[str]:
    """Regular English inflections of the last word of ``lemma`` (plus irregular forms)."""
    words = lemma.split("_")
    w = words[-1]
    forms = {w, w + "s", w + "es", w + "ed", w + "d", w + "ing", w + "er", w + "est", w + "'s"}
    if w.endswith("e"):
        forms |= {w[:-1] + "ing", w[:-1] + "ed"}
    if w.endswith("y") and len(w) > 2:
        forms |= {w[:-1] + "ies", w[:-1] + "ied", w[:-1] + "ier", w[:-1] + "iest"}
    if len(w) >= 3 and w[-1] not in "aeiouwxy" and w[-2] in "aeiou" and w[-3] not in "aeiou":
        forms |= {w + w[-1] + "ed", w + w[-1] + "ing", w + w[-1] + "er"}
    out = {" ".join(words[:-1] + [f]) for f in forms}
    for irr in (irregular or {}).get(lemma, ()):
        out.add(irr.replace("_", " "))
    return out


def find_target(sentence: str, lemma: str, irregular: dict[str, set[str]] | None = None) -> tuple[int, int] | None:
    """Character span of the first occurrence of ``lemma`` (any inflection) in ``sentence``."""
    irr = tuple(sorted((irregular or {}).get(lemma, ())))
    m = _pattern(lemma, irr).search(sentence)
    return (m.start(), m.end()) if m else None


@functools.lru_cache(maxsize=200_000)
def _pattern(lemma: str, irr: tuple[str, ...]) -> re.Pattern:
    forms = sorted(inflections(lemma, {lemma: set(irr)}), key=len, reverse=True)
    alt = "|".join(re.escape(f).replace(r"\ ", r"[\s-]") for f in forms)
    return re.compile(r"(?<![\w-])(" + alt + r")(?![\w-])", flags=re.I)


def instances(synsets: dict[str, Synset], irregular: dict[str, set[str]] | None = None) -> Iterator[dict]:
    """Every (lemma, synset, example sentence, span) where a lemma of the synset occurs in its example."""
    for s in synsets.values():
        for j, ex in enumerate(s.examples):
            for lemma in s.lemmas:
                span = find_target(ex, lemma, irregular)
                if span:
                    yield {
                        "lemma": lemma,
                        "pos": s.pos,
                        "synset": s.id,
                        "sentence": ex,
                        "start": span[0],
                        "end": span[1],
                        "example_idx": j,
                    }
                    break


def lemma_index(synsets: dict[str, Synset]) -> dict[tuple[str, str], list[str]]:
    """(lemma, pos) -> synset ids, in file order."""
    idx: dict[tuple[str, str], list[str]] = {}
    for s in synsets.values():
        for lem in s.lemmas:
            idx.setdefault((lem, s.pos), []).append(s.id)
    return idx


HYPERNYM = {"@", "@i"}


def hypernyms(s: Synset) -> list[str]:
    return [t for sym, t in s.pointers if sym in HYPERNYM]


def related(a: Synset, b: Synset) -> bool:
    """Directly connected by any pointer, or sisters (sharing a direct hypernym)."""
    if any(t == b.id for _, t in a.pointers) or any(t == a.id for _, t in b.pointers):
        return True
    return bool(set(hypernyms(a)) & set(hypernyms(b)))
