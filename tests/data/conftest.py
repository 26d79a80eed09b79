"""Tiny fixtures in the real on-disk formats; nothing here touches the network."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NUM_WORDS = 30


def wn_line(offset: int, lex: int, pos: str, words: list[str], ptrs: list[tuple[str, int, str]], gloss: str) -> str:
    w = " ".join(f"{x} 0" for x in words)
    p = " ".join(f"{sym} {off:08d} {ps} 0000" for sym, off, ps in ptrs)
    return f"{offset:08d} {lex:02d} {pos} {len(words):02x} {w} {len(ptrs):03d} {p}{' ' if p else ''}| {gloss}  "


def make_wordnet(root) -> dict:
    """Words w0..w29 (nouns 'wordN'): sense A and B (unrelated, 2 examples each) and sense C, a hyponym
    of A (directly related: never a WiC negative with A). Plus one verb with an irregular form."""
    root.mkdir(parents=True, exist_ok=True)
    lines, meta = ["  1 This software and database is being provided to you (licence header)"], {}
    off = 1000
    for i in range(NUM_WORDS):
        w = f"word{i}"
        a, b, c = off, off + 100, off + 200
        off += 300
        lines.append(
            wn_line(
                a,
                3,
                "n",
                [w],
                [("~", c, "n")],
                f'first meaning of {w} number {i}; "the {w} stood by the river"; "two {w}s were here"',
            )
        )
        lines.append(
            wn_line(
                b,
                3,
                "n",
                [w, f"alt{i}"],
                [],
                f'second unrelated meaning {i}; "she paid the {w} in cash"; "a {w} of gold coins"',
            )
        )
        lines.append(wn_line(c, 3, "n", [w], [("@", a, "n")], f'a special kind of the first {i}; "that {w} is odd"'))
        meta[w] = {"A": f"n{a:08d}", "B": f"n{b:08d}", "C": f"n{c:08d}"}
    (root / "data.noun").write_text("\n".join(lines) + "\n")
    (root / "data.verb").write_text(
        wn_line(500, 29, "v", ["run"], [], 'move fast on foot; "he ran home"; "they are running late"')
        + "\n"
        + wn_line(600, 29, "v", ["run"], [], 'operate; "she runs a shop"; "he ran the company"')
        + "\n"
    )
    (root / "verb.exc").write_text("ran run\n")
    return meta


@pytest.fixture
def wordnet_dir(tmp_path):
    root = tmp_path / "wordnet"
    make_wordnet(root)
    return root


@pytest.fixture
def vader_dir(tmp_path):
    root = tmp_path / "vader"
    root.mkdir()
    rows_t = [
        f"{i}\t{(-1) ** i * (0.2 + i % 4)}\ttweet number {i} is {'great' if i % 2 == 0 else 'awful'}"
        for i in range(1, 120)
    ]
    (root / "tweets_GroundTruth.txt").write_text("\r\n".join(rows_t) + "\r\n\r\n")
    rows_a = [
        f"{d}_{s}\t{1.5 if d % 2 else -2.0}\treview {d} sentence {s} {'good' if d % 2 else 'bad'}"
        for d in range(1, 30)
        for s in range(1, 4)
    ]
    (root / "amazonReviewSnippets_GroundTruth.txt").write_text("\n".join(rows_a) + "\n")
    return root
