import json

import pytest

from workbench.data.clean import clean_text, dedup_documents, looks_like_markup, split_long
from workbench.data.corpus import prepare_docs
from workbench.data.files import (
    Counts,
    DataError,
    atomic_path,
    cache_dir,
    read_jsonl,
    read_lines,
    read_text,
    split_of,
    stratified_split,
    write_jsonl,
)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path.resolve()
    monkeypatch.delenv("WORKBENCH_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "workbench")


def test_clean_text_normalises():
    c = Counts()
    out = clean_text(
        "Cafe\u0301  au\tlait\r\n\r\n\r\n\r\nnext\x07 line  \n*** START OF THIS PROJECT GUTENBERG EBOOK X\n",
        c,
    )
    assert out == "Caf\u00e9 au lait\n\nnext line"
    assert c["control_chars_removed"] == 1


def test_dedup_documents_and_paragraphs():
    para = "This paragraph is long enough to be considered for paragraph-level deduplication."
    docs = [
        {"doc_id": "a", "text": f"{para}\n\nunique one"},
        {"doc_id": "b", "text": f"{para}\n\nunique one"},
        {"doc_id": "c", "text": f"{para}\n\nsomething else entirely"},
        {"doc_id": "d", "text": "tiny"},
    ]
    c = Counts()
    out = list(dedup_documents(docs, c))
    assert [d["doc_id"] for d in out] == ["a", "c"]
    assert out[1]["text"] == "something else entirely"
    assert c["duplicate_docs"] == 1 and c["duplicate_paragraphs"] == 1 and c["short_docs_dropped"] == 1


def test_split_long_and_prepare_docs_counts():
    text = "\n\n".join(["x" * 40] * 10) + "\n\n" + "y" * 250
    parts = split_long(text, 100)
    assert all(len(p) <= 100 for p in parts) and "".join(parts).count("y") == 250
    c = Counts()
    docs = prepare_docs(
        [
            {"source": "s", "doc_id": "d1", "text": text},
            {"source": "s", "doc_id": "e", "text": " \n "},
            {"source": "spam", "doc_id": "m", "group": "spam-1", "text": "buy now"},
        ],
        c,
        max_doc_chars=100,
    )
    assert len(docs) == len(parts) and docs[0]["doc_id"] == "d1#0" and c["long_docs_split"] == 1
    assert c["empty_docs"] == 1


def test_markup_detection():
    assert looks_like_markup("<html><body><p>hi</p></body></html>")
    assert not looks_like_markup("Plain prose about the weather, nothing more.")


def test_bad_bytes_and_empty_lines_counted(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"good line\n\n   \nbad \xff\xfe bytes\n")
    c = Counts()
    lines = list(read_lines(p, c))
    assert [n for n, _ in lines] == [1, 4] and "\ufffd" in lines[1][1]
    assert c["empty_lines"] == 2 and c["bad_bytes"] == 2
    c2 = Counts()
    assert "\ufffd" in read_text(p, c2) and c2["files_with_bad_bytes"] == 1


def test_jsonl_errors_name_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(DataError, match=r"x\.jsonl:3: invalid JSON"):
        list(read_jsonl(p))
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: expected a JSON object"):
        list(read_jsonl(p))


def test_write_jsonl_canonical_and_atomic(tmp_path):
    p = tmp_path / "out.jsonl"
    write_jsonl(p, [{"b": 1, "a": "é"}])
    assert p.read_text(encoding="utf-8") == '{"a": "é", "b": 1}\n'
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("killed")
    assert json.loads(p.read_text())["b"] == 1
    assert [x.name for x in tmp_path.iterdir()] == ["out.jsonl"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    import os
    import stat

    from workbench.data.files import atomic_dir

    old = os.umask(umask)
    try:
        write_jsonl(tmp_path / "a.jsonl", [{"a": 1}])
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.jsonl").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~umask


def test_splits_deterministic_and_stratified():
    assert split_of("bank", "wic") == split_of("bank", "wic")
    groups = {"g1": [f"a{i}" for i in range(20)], "g2": ["b0", "b1", "b2"], "g3": ["c0"]}
    s = stratified_split(groups, "salt")
    assert s == stratified_split(groups, "salt")
    for g, keys in groups.items():
        got = {s[k] for k in keys}
        assert got == ({"train"} if g == "g3" else {"train", "validation", "test"})


def test_build_corpus_with_an_empty_source(monkeypatch, tmp_path):
    from workbench.data import corpus
    from workbench.data import sources as S

    docs = {
        "sotu": [],
        "fortunes": [
            {"source": "fortunes", "doc_id": f"fortunes/x/{i}", "text": f"Fortune number {i} says hello."}
            for i in range(40)
        ],
    }
    monkeypatch.setattr(S, "is_fetched", lambda name, cache=None: name in docs)
    monkeypatch.setattr(S, "read_source", lambda name, cache=None, counts=None: iter(docs[name]))
    logs = []
    stats = corpus.build_corpus(tmp_path, log=logs.append)
    assert stats["counts"]["empty_source:sotu"] == 1 and any("sotu" in m for m in logs)
    assert stats["train"]["docs"] + stats["validation"]["docs"] == 40 and stats["validation"]["docs"] >= 1
    assert "janeausten" in stats["skipped_sources"]
    ds = corpus.load_corpus(tmp_path)
    assert set(ds) == {"train", "validation"} and ds["train"].column_names == ["doc_id", "source", "text"]
