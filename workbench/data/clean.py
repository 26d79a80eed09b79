"""Text cleaning and deduplication for the pretraining corpus."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator

from workbench.data.files import Counts

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_GUTENBERG = re.compile(r"(?im)^.*\b(project gutenberg|gutenberg-tm|\*\*\* ?(start|end) of)\b.*$")
_HTML = re.compile(r"<\s*(html|body|table|div|font|td|br|p)\b", re.I)
_URLISH = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+")


def clean_text(text: str, counts: Counts | None = None) -> str:
    """Normalise unicode (NFC), line endings and spaces; drop control characters and Gutenberg lines."""
    counts = counts if counts is not None else Counts()
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    n_ctrl = len(_CTRL.findall(text))
    if n_ctrl:
        counts["control_chars_removed"] += n_ctrl
        text = _CTRL.sub("", text)
    text = _GUTENBERG.sub("", text)
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def looks_like_markup(text: str) -> bool:
    """HTML mail and URL/address-heavy text: not prose."""
    if len(_HTML.findall(text)) >= 2:
        return True
    words = max(1, len(text.split()))
    return len(_URLISH.findall(text)) / words > 0.05


def clean_email(body: str) -> str:
    """Drop quoted replies, signatures and mailing-list footers from an email body."""
    out = []
    for ln in body.split("\n"):
        s = ln.strip()
        if s.startswith(">") or s.startswith("|"):
            continue
        if s in ("--", "-- ") or s.startswith("_______________"):
            break
        out.append(ln)
    return "\n".join(out)


def _key(s: str) -> str:
    return hashlib.sha1(" ".join(s.lower().split()).encode()).hexdigest()


def split_long(text: str, max_chars: int) -> list[str]:
    """Split an over-long document at paragraph (or, failing that, hard) boundaries into <= max_chars."""
    if len(text) <= max_chars:
        return [text]
    chunks, cur, size = [], [], 0
    for para in text.split("\n\n"):
        while len(para) > max_chars:  # a single giant paragraph
            if cur:
                chunks.append("\n\n".join(cur))
                cur, size = [], 0
            chunks.append(para[:max_chars])
            para = para[max_chars:]
        if size + len(para) + 2 > max_chars and cur:
            chunks.append("\n\n".join(cur))
            cur, size = [], 0
        cur.append(para)
        size += len(para) + 2
    if cur:
        chunks.append("\n\n".join(cur))
    return [c for c in chunks if c.strip()]


def dedup_documents(
    docs: Iterable[dict], counts: Counts | None = None, min_para_chars: int = 60, min_doc_chars: int = 20
) -> Iterator[dict]:
    """Exact document dedup, then drop long paragraphs already seen anywhere earlier (boilerplate, reposts).

    Short paragraphs (< ``min_para_chars``, e.g. stage directions) are never dropped; documents that end
    up shorter than ``min_doc_chars`` are dropped. Order-dependent, so callers pass a deterministic order.
    """
    counts = counts if counts is not None else Counts()
    seen_docs: set[str] = set()
    seen_paras: set[str] = set()
    for d in docs:
        k = _key(d["text"])
        if k in seen_docs:
            counts["duplicate_docs"] += 1
            continue
        seen_docs.add(k)
        kept = []
        for para in d["text"].split("\n\n"):
            if len(para) >= min_para_chars:
                pk = _key(para)
                if pk in seen_paras:
                    counts["duplicate_paragraphs"] += 1
                    continue
                seen_paras.add(pk)
            kept.append(para)
        text = "\n\n".join(kept).strip()
        if len(text) < min_doc_chars:
            counts["short_docs_dropped"] += 1
            continue
        yield {**d, "text": text}
