"""`workbench data prepare --sources`: refreshes sources without shrinking the corpus or losing statistics."""

import functools
import importlib
import json

import pytest

from workbench.data import sources as S
from workbench.data.cli import main as data_main
from workbench.data.files import DataError, sha256_file

P = importlib.import_module("workbench.data.prepare")  # the module (`workbench.data.prepare` is also a function)

AVAILABLE = ("sotu", "brown", "fortunes")  # the sources our fake clients can fetch; the rest fail


def _docs(name: str) -> list[dict]:
    if name == "brown":
        genres = ("news", "fiction")
        return [{"source": "brown", "doc_id": f"brown/c{i:02d}", "genre": genres[i % 2],
                 "text": " ".join(f"Brown sentence {j} of document {i} about {genres[i % 2]}." for j in range(12)),
                 "sentences": [f"Brown sentence {j} of document {i} about {genres[i % 2]}." for j in range(12)]}
                for i in range(12)]
    return [{"source": name, "doc_id": f"{name}/{i}",
             "text": f"{name.title()} text number {i}: the quick brown fox jumps over the lazy dog {i} times."}
            for i in range(40)]


@pytest.fixture
def fake_sources(monkeypatch):
    def fetch(name, cache=None, force=False, timeout=600):
        if name not in AVAILABLE:
            raise S.FetchError(name, "fake", "no client here", "install it")
        d = S.raw_dir(name, cache)
        d.mkdir(parents=True, exist_ok=True)
        (d / S.MARKER).write_text("{}")
        return d

    monkeypatch.setattr(S, "fetch", fetch)
    monkeypatch.setattr(S, "read_source", lambda name, cache=None, counts=None: iter(_docs(name)))
    monkeypatch.setattr(P, "train_tokenizer", functools.partial(P.train_tokenizer, hard_vocab_limit=False))


def _summary(cache):
    return json.loads((cache / "prepare_summary.json").read_text())


def test_sources_refresh_keeps_the_corpus_tokenizer_and_statistics(tmp_path, fake_sources, capsys):
    cache = tmp_path / "cache"
    full = P.prepare(cache=cache, vocab_size=450, log=lambda m: None)
    assert full["corpus"]["sources"] == ["sotu", "brown", "fortunes"]
    docs = full["corpus"]["train"]["docs"]
    tok = cache / "tokenizer" / "tokenizer.model"
    tok_bytes = tok.read_bytes()

    part = P.prepare(sources=["brown"], cache=cache, vocab_size=450, log=lambda m: None)
    assert part["corpus"]["sources"] == ["sotu", "brown", "fortunes"]  # not Brown alone
    assert part["corpus"]["train"]["docs"] == docs and part["corpus"]["train"]["tokens"] > 0
    assert tok.read_bytes() == tok_bytes
    assert part["tokenizer"]["corpus_sha256"] == sha256_file(cache / "corpus" / "train.jsonl")
    saved = _summary(cache)
    assert saved["corpus"] == full["corpus"] and saved["tokenizer"] == full["tokenizer"]
    assert set(saved["tasks"]) >= {"genre", "mixture"}

    # A requested source that fails: non-zero exit, and the summary still holds the corpus and tokenizer.
    capsys.readouterr()
    assert data_main(["prepare", "--cache", str(cache), "--sources", "vader", "--vocab-size", "450"]) == 1
    assert "vader" in capsys.readouterr().err
    saved = _summary(cache)
    assert saved["corpus"]["train"]["tokens"] == full["corpus"]["train"]["tokens"] and saved["tokenizer"]
    assert saved["failed"].keys() == {"vader"}


def test_restricting_the_corpus_is_explicit_and_retrains_the_tokenizer(tmp_path, fake_sources):
    cache = tmp_path / "cache"
    full = P.prepare(cache=cache, vocab_size=450, log=lambda m: None)
    small = P.prepare(sources=["brown"], cache=cache, vocab_size=450, restrict_corpus=True, log=lambda m: None)
    assert small["corpus"]["sources"] == ["brown"]
    assert small["corpus"]["train"]["docs"] < full["corpus"]["train"]["docs"]
    assert small["tokenizer"]["corpus_sha256"] != full["tokenizer"]["corpus_sha256"]
    assert small["tokenizer"]["corpus_sha256"] == sha256_file(cache / "corpus" / "train.jsonl")


def test_bad_source_arguments_are_errors(tmp_path, fake_sources, capsys):
    with pytest.raises(DataError, match="unknown source.*'brwn'"):
        P.prepare(sources=["brwn"], cache=tmp_path)
    with pytest.raises(DataError, match="needs the sources"):
        P.prepare(cache=tmp_path, restrict_corpus=True)
    assert data_main(["prepare", "--cache", str(tmp_path), "--sources", "brwn"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown source(s) 'brwn'" in err[0] and "Traceback" not in err[0]
