"""The mixture's retrieval items put the positive at a uniformly drawn letter, always among the options."""

from __future__ import annotations

from collections import Counter

import pytest

from workbench.data import cache_dir
from workbench.data.tasks import LETTERS, SPLITS, build_mixture, format_text_to_text, retrieval_options

CHI2_3DOF_P001 = 16.27  # chi-square critical value, 3 degrees of freedom, p = 0.001


def _items(n: int) -> list[dict]:
    """Retrieval rows like `build_retrieval`'s: 10 candidates, the positive at every index 0..9."""
    return [{"word": f"w{i}", "sentence": f"the w{i} is here", "query": f"w{i}: the w{i} is here",
             "candidates": [f"gloss {i}-{j}" for j in range(10)], "label": i % 10, "positive_id": f"s{i}"}
            for i in range(n)]


def _check(rows: list[dict], items: list[dict]) -> Counter:
    by_query = {(r["word"], r["sentence"]): r for r in items}
    letters = Counter()
    for m in rows:
        lines = m["inputs"].split("\n")
        options = {ln[0]: ln[3:] for ln in lines if len(ln) > 2 and ln[1:3] == ") "}
        word = m["inputs"].split('"')[1]
        src = by_query[word, m["inputs"].split(" in: ", 1)[1].split("\n")[0]]
        positive = src["candidates"][src["label"]]
        assert list(options) == list(LETTERS[:4]) and len(set(options.values())) == 4
        assert set(options.values()) <= set(src["candidates"]) and positive in options.values()
        assert options[m["targets"]] == positive
        letters[m["targets"]] += 1
    return letters


def _chi2(letters: Counter) -> float:
    n = sum(letters.values())
    return sum((letters[c] - n / 4) ** 2 / (n / 4) for c in LETTERS[:4])


def test_answer_letter_uniform_and_positive_always_an_option():
    items = _items(4000)
    mix = build_mixture({"retrieval": {"train": items, "validation": [], "test": []}},
                        caps={"train": 10_000, "validation": 1, "test": 1})
    letters = _check(mix["train"], items)
    assert sum(letters.values()) == 4000
    assert _chi2(letters) < CHI2_3DOF_P001, letters
    assert all(abs(letters[c] / 4000 - 0.25) < 0.03 for c in "ABCD"), letters


def test_slot_is_seeded_and_handles_few_candidates():
    ex = _items(1)[0]
    assert retrieval_options(ex) == retrieval_options(dict(ex))
    assert format_text_to_text(ex, "retrieval") == format_text_to_text(ex, "retrieval")
    three = {**ex, "candidates": ex["candidates"][:3], "label": 2}
    options, slot = retrieval_options(three)
    assert len(options) == 3 and options[slot] == three["candidates"][2] and sorted(options) == sorted(
        three["candidates"])


@pytest.mark.skipif(not (cache_dir() / "tasks" / "retrieval" / "train.jsonl").is_file(),
                    reason="real data not prepared (workbench data prepare)")
def test_real_retrieval_items_uniform():
    from workbench.data import load_task

    ds = load_task("retrieval")
    items = {s: list(ds[s].select(range(min(1500, len(ds[s]))))) for s in SPLITS}
    mix = build_mixture({"retrieval": items})
    letters = _check(mix["train"], items["train"])
    assert _chi2(letters) < CHI2_3DOF_P001, letters
