"""Cache location, atomic writes, JSONL I/O and tolerant text reading.

Bad input never crashes deep inside training: readers count empty lines, undecodable bytes and
over-long documents in a :class:`Counts` and raise :class:`DataError` naming ``file:line`` for
anything that cannot be repaired (e.g. a malformed JSONL record).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from workbench.results import apply_umask

REPO_ROOT = Path(__file__).resolve().parents[2]


class DataError(ValueError):
    """A data problem that names the file and (where it applies) the line."""


class Counts(collections.Counter):
    """Counter of data-quality events (``empty_lines``, ``bad_bytes``, ``split_long_docs`` ...)."""


def cache_dir() -> Path:
    """Cache root: ``$WORKBENCH_CACHE`` or ``<repo>/.cache/workbench`` (gitignored)."""
    env = os.environ.get("WORKBENCH_CACHE")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".cache" / "workbench"


def resolve_cache(cache: str | os.PathLike | None) -> Path:
    return Path(cache).expanduser().resolve() if cache is not None else cache_dir()


def stable_hash(*parts: Any) -> int:
    """Process-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big")


def split_of(key: Any, salt: str = "", val: float = 0.1, test: float = 0.1) -> str:
    """Deterministic split assignment of a grouping key (word, synset, document)."""
    u = stable_hash(salt, key) / 2**64
    return "test" if u < test else "validation" if u < test + val else "train"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it into place only if the block succeeds.

    The file gets the usual permissions (0666 minus the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            apply_umask(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp directory that replaces ``path`` only when the block succeeds (mode 0777 minus the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    apply_umask(tmp)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically, one canonical JSON object per line; return the count."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike, counts: Counts | None = None) -> Iterator[dict]:
    """Read JSONL; blank lines are skipped and counted, malformed lines raise ``DataError(file:line)``."""
    counts = counts if counts is not None else Counts()
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(raw, counts)
            if not line.strip():
                counts["empty_lines"] += 1
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield obj


def _decode(raw: bytes, counts: Counts, unit: str = "lines") -> str:
    """utf-8 with undecodable bytes as U+FFFD, counted in `bad_bytes` and `<unit>_with_bad_bytes`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        counts["bad_bytes"] += text.count("\ufffd")
        counts[f"{unit}_with_bad_bytes"] += 1
        return text


def read_text(path: str | os.PathLike, counts: Counts | None = None, encoding: str = "utf-8") -> str:
    """Read a text file; undecodable bytes become U+FFFD (utf-8) and are counted."""
    counts = counts if counts is not None else Counts()
    data = Path(path).read_bytes()
    if encoding.lower().replace("-", "") != "utf8":
        return data.decode(encoding, errors="replace")
    return _decode(data, counts, "files")


def read_lines(path: str | os.PathLike, counts: Counts | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(lineno, line)`` of non-empty lines; empty lines and bad bytes are counted."""
    counts = counts if counts is not None else Counts()
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(raw, counts).rstrip("\r\n")
            if not line.strip():
                counts["empty_lines"] += 1
                continue
            yield lineno, line


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stratified_split(
    groups: dict[str, list[str]],
    salt: str,
    val: float = 0.1,
    test: float = 0.1,
) -> dict[str, str]:
    """Split keys within each group (e.g. documents within a genre) so every split sees every group.

    Keys are ordered by a stable hash; the first ``max(1, round(test * n))`` go to test, the next
    ``max(1, round(val * n))`` to validation (when the group has at least 3 keys), the rest to train.
    """
    out = {}
    for _, keys in sorted(groups.items()):
        keys = sorted(keys, key=lambda k: stable_hash(salt, k))
        n = len(keys)
        n_test = max(1, round(test * n)) if n >= 3 and test > 0 else 0
        n_val = max(1, round(val * n)) if n >= 3 and val > 0 else 0
        for i, k in enumerate(keys):
            out[k] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return out
